"""Readiness follows replication: the lag tracker."""

from __future__ import annotations

import itertools
import json
import threading

import pytest
from webtest_call import call_app

from counter_app import VisitStore, create_app
from counter_app.replication import ReplicationMonitor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Litestream:
    """Answers like Litestream's control socket: (local, replicated) or an error."""

    def __init__(self) -> None:
        self.local, self.replicated, self.error = 1, 1, None

    def __call__(self) -> tuple[int, int]:
        if self.error:
            raise OSError(self.error)
        return self.local, self.replicated


@pytest.fixture
def world():
    clock, litestream = Clock(), Litestream()
    monitor = ReplicationMonitor(litestream, max_lag=10, interval=1, clock=clock)
    return clock, litestream, monitor


def test_red_until_litestream_first_answers(world):
    _, _, monitor = world
    verdict = monitor.verdict()
    assert not verdict.ok and verdict.reason.startswith("replication down")


def test_green_while_the_replica_keeps_up(world):
    clock, litestream, monitor = world
    for txid in range(1, 30):
        litestream.local = txid
        monitor.poll()
        litestream.replicated = txid  # confirmed a second later
        clock.now += 1
    monitor.poll()
    assert monitor.verdict().ok
    assert monitor.lag() == 0


def test_red_once_writes_wait_longer_than_the_limit(world):
    clock, litestream, monitor = world
    monitor.poll()
    litestream.local = 2  # a write the replica never confirms
    for _ in range(10):
        monitor.poll()
        clock.now += 1
    assert monitor.verdict().ok, "10 s behind is still within the limit"
    clock.now += 1.5
    monitor.poll()
    verdict = monitor.verdict()
    assert not verdict.ok
    assert verdict.reason.startswith("replication behind: writes of the last 12 s")
    litestream.replicated = 2  # the store is back
    monitor.poll()
    assert monitor.verdict().ok


def test_idle_database_with_an_unreachable_store_is_not_behind(world):
    clock, litestream, monitor = world
    monitor.poll()
    litestream.replicated = 0  # Litestream forgets the replica position on errors
    for _ in range(30):
        clock.now += 1
        monitor.poll()
    assert monitor.verdict().ok, "no write is waiting"


def test_red_when_litestream_stops_answering(world):
    clock, litestream, monitor = world
    monitor.poll()
    litestream.error = "connection refused"
    clock.now += 2
    monitor.poll()
    assert monitor.verdict().ok, "one missed answer is not an outage"
    clock.now += 2
    monitor.poll()
    verdict = monitor.verdict()
    assert not verdict.ok
    assert "replication down" in verdict.reason and "connection refused" in verdict.reason


def test_healthz_says_why_and_livez_stays_green(tmp_path, world):
    clock, litestream, monitor = world
    store = VisitStore(str(tmp_path / "c.db"))
    app = create_app(store, monitor)
    assert call_app(app, "GET", "/healthz")[0] == 503
    monitor.poll()
    status, _, body = call_app(app, "GET", "/healthz")
    assert (status, body) == (200, "ok\n")
    litestream.error = "gone"
    clock.now += 10
    status, _, body = call_app(app, "GET", "/healthz")
    assert status == 503 and body.startswith("replication down")
    assert call_app(app, "GET", "/livez")[::2] == (200, "ok\n")
    assert store.count() == 0, "health checks never count"
    store.close()


def test_asks_for_an_upload_at_once_when_writes_wait(world):
    clock, litestream, _ = world
    pushes = []

    def push():
        pushes.append(clock.now)
        return litestream()

    monitor = ReplicationMonitor(litestream, max_lag=10, interval=1, clock=clock, push=push)
    monitor.poll()
    litestream.local = 2  # not confirmed by the replica
    for _ in range(12):
        monitor.poll()
        monitor._maybe_push()
        clock.now += 1
    for thread in threading.enumerate():
        if thread.name == "replication-push":
            thread.join(timeout=5)
    # Not before writes waited push_after (5 s), then again every 5 s while
    # they still wait (12 s of waiting: at 5 s and at 10 s), never sooner.
    assert len(pushes) >= 2, pushes
    assert pushes[0] >= 1005
    assert all(b - a >= 5 for a, b in itertools.pairwise(pushes)), pushes


@pytest.mark.parametrize(
    ("check", "red_because"),
    [
        (None, None),
        ({"restorable": True, "checked_unix": 990.0, "valid_for": 120}, None),
        ({"restorable": None, "reason": "not checked: the store does not answer"}, None),
        ({"restorable": False, "reason": "no plan"}, "replica cannot be restored: no plan"),
        (
            {"restorable": True, "new_history_pending": True, "reason": "waiting"},
            "replica history restarted, not yet in the store: waiting",
        ),
        (
            {"restorable": True, "checked_unix": 800.0, "valid_for": 120, "checked_at": "t"},
            "replica check stale: last at t, good for 120 s",
        ),
    ],
    ids=["none-yet", "restorable", "unknown", "not-restorable", "pending", "stale"],
)
def test_readiness_follows_the_replica_check(tmp_path, check, red_because):
    path = tmp_path / "replica.json"
    if check is not None:
        path.write_text(json.dumps(check))
    clock = Clock()
    monitor = ReplicationMonitor(
        Litestream(), max_lag=10, clock=clock, replica_check=str(path), wall_clock=clock
    )
    monitor.poll()
    verdict = monitor.verdict()
    if red_because is None:
        assert verdict.ok, verdict.reason
    else:
        assert not verdict.ok and verdict.reason == red_because


def test_an_unreadable_replica_check_is_red(tmp_path):
    path = tmp_path / "replica.json"
    path.write_text("{not json")
    monitor = ReplicationMonitor(Litestream(), max_lag=10, replica_check=str(path))
    monitor.poll()
    assert monitor.verdict().reason.startswith("replica check unreadable")
