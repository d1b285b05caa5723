"""Acknowledge after replication, against a Litestream stand-in whose
answers the tests control (the real one: test_replicated_ack_litestream.py)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import apsw
import pytest
from webtest_call import call_app

from counter_app import VisitStore, create_app, replicated_ack
from counter_app.metrics import StateCollector
from counter_app.replicated_ack import (
    RETRY_AFTER_ERROR,
    NotReplicated,
    ReplicationGate,
)


class FakeLitestream:
    """``sync(wait)`` as Litestream answers it: each call takes up what was
    committed (local txid + 1) and, while ``reachable``, the replica holds it.
    ``lag_answers`` answers that many calls with the replica where it was
    (its position dropped, or it is stuck); ``raced_answers`` answers that many
    calls as when a sync of Litestream's own loop made a file between the
    call's upload and its answer: the replica moved, but one short of txid."""

    def __init__(self, delay: float = 0.0) -> None:
        self.local = 0
        self.replicated = 0
        self.reachable = threading.Event()
        self.reachable.set()
        self.calls = 0
        self.lag_answers = 0
        self.raced_answers = 0
        self.delay = delay
        self.waits: list[int] = []

    def sync(self, wait: int) -> tuple[int, int]:
        self.calls += 1
        self.waits.append(wait)
        time.sleep(self.delay)
        self.local += 1
        if not self.reachable.is_set():
            raise OSError("Litestream answered 500: sync database: replica sync: unreachable")
        if self.lag_answers:
            self.lag_answers -= 1
        elif self.raced_answers:
            self.raced_answers -= 1
            self.replicated = self.local
            self.local += 1
        else:
            self.replicated = self.local
        return self.local, self.replicated


@pytest.fixture
def litestream():
    return FakeLitestream(delay=0.01)


@pytest.fixture
def gate(litestream):
    gate = ReplicationGate(litestream.sync, timeout=1)
    yield gate
    gate.close()


@pytest.fixture
def acked(db_path, gate):
    store = VisitStore(db_path, gate=gate)
    yield store
    store.close()


def stored_count(db_path: str) -> int:
    conn = apsw.Connection(db_path)
    try:
        return conn.execute("SELECT count FROM visits").fetchone()[0]
    finally:
        conn.close()


def test_a_visit_is_answered_once_the_replica_holds_it(acked, litestream):
    assert [acked.record_visit() for _ in range(3)] == [1, 2, 3]
    assert litestream.calls == 3  # one call per group: one visit each here
    # Litestream is told to wait as long as a visit may (whole seconds).
    assert set(litestream.waits) == {1}


def test_one_call_carries_many_visits(acked, litestream):
    litestream.delay = 0.05  # a store round trip: visits pile up meanwhile
    with ThreadPoolExecutor(32) as pool:
        numbers = sorted(pool.map(lambda _: acked.record_visit(), range(320)))
    assert numbers == list(range(1, 321))
    assert litestream.calls < 320 / 4, litestream.calls


def test_the_store_away_gives_503_after_the_bound_and_never_a_200(db_path, acked, litestream, gate):
    acked.record_visit()
    litestream.reachable.clear()
    started = time.monotonic()
    with pytest.raises(NotReplicated, match=r"within 1 s.*unreachable.*reaches the replica later"):
        acked.record_visit()
    assert 0.9 < time.monotonic() - started < 2
    # Counted here all the same: it reaches the replica with what follows.
    assert stored_count(db_path) == 2
    assert gate.state().waiting == 1 and gate.state().sync_errors > 0
    litestream.reachable.set()
    # The thread that gave up counts on: its next visit is its own.
    assert acked.record_visit() == 3
    state = gate.state()
    assert state.waiting == 0 and state.last_error == ""


def test_an_answer_where_the_replica_lags_its_txid_settles_nothing(acked, litestream, gate):
    """The covering txid is the one answered by the first call after the
    commit; an answer whose replicated_txid is below it (Litestream's own
    loop synced in between) waits for the next call."""
    litestream.lag_answers = 3
    assert acked.record_visit() == 1
    assert litestream.calls == 4


def test_a_raced_answer_is_followed_by_the_next_call_at_once(acked, litestream, gate):
    """The replica moved but stopped one short of the call's txid: the next
    call goes at once (RETRY_AFTER_ERROR is for a replica that did not move)."""
    litestream.delay = 0
    acked.record_visit()
    litestream.raced_answers = 3
    started = time.monotonic()
    assert acked.record_visit() == 2
    assert time.monotonic() - started < RETRY_AFTER_ERROR
    assert litestream.calls == 1 + 2  # the second one's replica covers the first's txid


class Visit:
    def __init__(self) -> None:
        self.wake = threading.Lock()
        self.wake.acquire()


def settled(visits, timeout: float = 2) -> bool:
    return all(v.wake.acquire(timeout=timeout) for v in visits)


def test_a_call_waits_briefly_for_as_many_visits_as_the_last_answer_woke(
    litestream, gate, monkeypatch
):
    """The cohort after an answer that woke 8: its visits come back one
    group at a time; one call carries them all, and the wait is bounded
    (GATHER_AT_MOST, made long here so a slow machine cannot miss it)."""
    monkeypatch.setattr(replicated_ack, "GATHER_AT_MOST", 0.5)
    litestream.delay = 0
    first = [Visit() for _ in range(8)]
    gate.hold(first)
    assert settled(first)
    calls = litestream.calls
    cohort = [Visit() for _ in range(8)]
    gate.hold(cohort[:3])
    time.sleep(0.05)
    gate.hold(cohort[3:])
    assert settled(cohort)
    assert litestream.calls == calls + 1
    # Fewer come back than the last answer woke: they go after the bound.
    started = time.monotonic()
    alone = [Visit()]
    gate.hold(alone)
    assert settled(alone)
    assert 0.45 <= time.monotonic() - started < 1.5
    # And a visit alone after an answer that woke one does not wait.
    for _ in range(5):
        started = time.monotonic()
        alone = [Visit()]
        gate.hold(alone)
        assert settled(alone)
        assert time.monotonic() - started < 0.25


def test_a_pause_is_not_cut_short_by_new_visits(litestream, gate):
    """A replica that does not move gets one call per RETRY_AFTER_ERROR,
    however fast visits come."""
    litestream.delay = 0
    litestream.lag_answers = 1000  # answered, the replica never moves
    started = time.monotonic()
    while time.monotonic() - started < 0.5:
        gate.hold([Visit()])  # each one wakes the gate's thread
        time.sleep(0.001)
    assert litestream.calls <= 0.5 / RETRY_AFTER_ERROR + 2, litestream.calls


def test_a_failed_commit_fails_at_once_without_waiting_for_the_replica(db_path, litestream):
    gate = ReplicationGate(litestream.sync, timeout=5)
    store = VisitStore(db_path, gate=gate)
    store._conn.execute("DROP TABLE visits")  # the next commit fails
    started = time.monotonic()
    with pytest.raises(apsw.SQLError):
        store.record_visit()
    assert time.monotonic() - started < 1
    store.close()
    gate.close()


def test_close_settles_what_is_held(db_path, litestream):
    litestream.delay = 0.2
    gate = ReplicationGate(litestream.sync, timeout=2)
    store = VisitStore(db_path, gate=gate)
    answered = []
    thread = threading.Thread(target=lambda: answered.append(store.record_visit()))
    thread.start()
    time.sleep(0.05)
    store.close()
    gate.close()
    thread.join(timeout=3)
    assert answered == [1]


def test_the_page_answers_503_with_the_reason_never_the_count(acked, litestream):
    app = create_app(acked, gate=acked._gate)
    assert call_app(app, "GET", "/")[::2] == (200, "This server has been visited 1 times.\n")
    litestream.reachable.clear()
    status, headers, body = call_app(app, "GET", "/")
    assert status == 503
    assert "not acknowledged" in body and "visited" not in body
    assert headers["Retry-After"] == "1" and headers["Cache-Control"] == "no-store"


def test_readiness_names_the_mode_and_the_wait(acked):
    app = create_app(acked, gate=acked._gate)
    acked.record_visit()
    status, _, body = call_app(app, "GET", "/healthz")
    assert status == 200
    first, second = body.splitlines()
    assert first == "ok"
    assert second.startswith("visits are acknowledged once the replica holds them (last wait 0.")
    assert "bound 1 s" in second


def test_metrics_show_the_mode_the_wait_and_the_calls(db_path, acked, gate, litestream, store):
    acked.record_visit()
    litestream.reachable.clear()
    with pytest.raises(NotReplicated):
        acked.record_visit()
    families = {m.name: m for m in StateCollector(acked, db_path, gate=gate).collect()}
    assert families["counter_ack_after_replication"].samples[0].value == 1
    assert families["counter_ack_waiting_visits"].samples[0].value == 1
    assert 0 < families["counter_ack_last_wait_seconds"].samples[0].value < 1
    syncs = {s.labels["result"]: s.value for s in families["counter_ack_syncs"].samples}
    assert syncs["ok"] == 1 and syncs["error"] > 0
    litestream.reachable.set()
    off = {m.name: m for m in StateCollector(store, db_path).collect()}
    assert off["counter_ack_after_replication"].samples[0].value == 0
    assert "counter_ack_waiting_visits" not in off


def test_groups_whose_requests_gave_up_are_forgotten(acked, litestream, gate):
    """A cover that can no longer be reached (Litestream began a new
    history, its numbers start again from 1) does not keep visits waiting."""
    litestream.lag_answers = 1000  # the replica never confirms
    with pytest.raises(NotReplicated):
        acked.record_visit()
    assert gate.state().waiting == 1
    time.sleep(1.3)  # past the bound and the second of grace
    litestream.lag_answers = 0
    litestream.local = litestream.replicated = 0  # a new history
    assert acked.record_visit() == 2  # answered although the old cover is not reached
    assert gate.state().waiting == 0
