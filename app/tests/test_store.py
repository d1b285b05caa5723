import os
import threading
import time
from pathlib import Path

import apsw
import pytest

from counter_app import VisitStore
from counter_app.store import MIN_SQLITE, LogFlushError, sqlite_version


def test_sqlite_is_new_enough_for_the_wal_reset_fix():
    assert sqlite_version() >= MIN_SQLITE


def test_counts_from_one(store):
    assert store.count() == 0
    assert [store.record_visit() for _ in range(3)] == [1, 2, 3]
    assert store.count() == 3


def test_database_is_in_wal_mode(db_path, store):
    conn = apsw.Connection(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_count_survives_reopen(db_path):
    first = VisitStore(db_path)
    first.record_visit()
    first.record_visit()
    first.close()
    second = VisitStore(db_path)
    assert second.record_visit() == 3
    second.close()


def test_count_is_one_row_whatever_the_visits(db_path, store):
    for _ in range(500):
        store.record_visit()
    conn = apsw.Connection(db_path)
    assert conn.execute("SELECT count(*) FROM visits").fetchone()[0] == 1


def test_unwritable_path_fails_loudly(tmp_path):
    with pytest.raises(apsw.CantOpenError):
        VisitStore(str(tmp_path / "missing-dir" / "counter.db"))


def test_close_leaves_the_wal_for_litestream(db_path):
    store = VisitStore(db_path)
    store.record_visit()
    store.close()
    # The last writes stay in the WAL (not checkpointed away on close), where
    # Litestream reads them.
    wal = Path(db_path + "-wal")
    assert wal.exists() and wal.stat().st_size > 0
    reopened = VisitStore(db_path)
    assert reopened.count() == 1
    reopened.close()


def test_new_database_files_follow_the_umask(tmp_path):
    # The unit's UMask=0007 must give the group (Litestream's account shares
    # the database through it) read-write on the database, -wal and -shm.
    path = tmp_path / "new.db"
    old = os.umask(0o007)
    try:
        store = VisitStore(str(path))
        store.record_visit()
        modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
        store.close()
    finally:
        os.umask(old)
    assert modes == {"new.db": 0o660, "new.db-wal": 0o660, "new.db-shm": 0o660}


def test_concurrent_visits_each_get_their_own_number(store):
    threads, each = 16, 100
    numbers: list[int] = []
    lock = threading.Lock()

    def visit_many():
        mine = [store.record_visit() for _ in range(each)]
        with lock:
            numbers.extend(mine)

    workers = [threading.Thread(target=visit_many) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(numbers) == list(range(1, threads * each + 1))
    assert store.count() == threads * each


def _hold_the_first_flush(store, monkeypatch):
    """Make the first transaction wait in its flush until released."""
    entered, release = threading.Event(), threading.Event()
    flush = store._flush_wal

    def held_flush():
        if not entered.is_set():
            entered.set()
            release.wait(10)
        flush()

    monkeypatch.setattr(store, "_flush_wal", held_flush)
    return entered, release


def _start_visits(store, n, results):
    workers = []
    for _ in range(n):

        def visit():
            try:
                results.append(store.record_visit())
            except Exception as error:  # noqa: BLE001 - the test looks at it
                results.append(error)

        workers.append(threading.Thread(target=visit))
        workers[-1].start()
    return workers


def _wait_for(predicate):
    deadline = time.monotonic() + 10
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_visits_waiting_during_a_commit_share_the_next_one(store, monkeypatch):
    commits = []
    execute = store._conn.execute
    monkeypatch.setattr(
        store,
        "_conn",
        type(
            "Conn", (), {"execute": lambda _, sql, *a: (commits.append(a), execute(sql, *a))[1]}
        )(),
    )
    entered, release = _hold_the_first_flush(store, monkeypatch)
    results: list = []
    first = _start_visits(store, 1, results)
    assert entered.wait(10)
    rest = _start_visits(store, 9, results)
    _wait_for(lambda: store._queue.qsize() == 9)
    release.set()
    for worker in first + rest:
        worker.join(10)
    assert sorted(results) == list(range(1, 11))
    # One transaction for the first visit, one for the nine that waited.
    assert [args[0]["visits"] for args in commits] == [1, 9]


def test_a_visit_is_answered_only_after_its_transaction_is_on_disk(store, monkeypatch):
    entered, release = _hold_the_first_flush(store, monkeypatch)
    results: list = []
    workers = _start_visits(store, 1, results)
    assert entered.wait(10)
    time.sleep(0.1)
    assert results == []  # committed, not yet flushed: no answer
    release.set()
    workers[0].join(10)
    assert results == [1]


def test_the_log_is_flushed_to_disk_for_each_transaction(db_path, store, monkeypatch):
    flushed = []
    fdatasync = os.fdatasync
    monkeypatch.setattr(
        os,
        "fdatasync",
        lambda fd: (flushed.append(os.readlink(f"/proc/self/fd/{fd}")), fdatasync(fd)),
    )
    store.record_visit()
    store.record_visit()
    assert flushed == [db_path + "-wal"] * 2


def test_a_failed_transaction_fails_its_visits_and_the_next_ones_go_on(store, monkeypatch):
    entered, release = _hold_the_first_flush(store, monkeypatch)
    results: list = []
    first = _start_visits(store, 1, results)
    assert entered.wait(10)
    execute = store._conn.execute
    failing = {"on": True}

    def execute_or_fail(sql, *args):
        if failing["on"] and "INSERT" in sql:
            failing["on"] = False
            raise apsw.IOError("disk I/O error")
        return execute(sql, *args)

    monkeypatch.setattr(
        store, "_conn", type("Conn", (), {"execute": lambda _, *a: execute_or_fail(*a)})()
    )
    rest = _start_visits(store, 3, results)
    _wait_for(lambda: store._queue.qsize() == 3)
    release.set()
    for worker in first + rest:
        worker.join(10)
    # The first visit's transaction went through; the three of the failed
    # one fail (in whatever order their threads append).
    assert [r for r in results if not isinstance(r, apsw.IOError)] == [1]
    assert sum(isinstance(r, apsw.IOError) for r in results) == 3
    monkeypatch.undo()
    assert store.record_visit() == 2


def test_transactions_and_flushes_run_on_the_writer_thread(store, monkeypatch):
    # Requests only queue their visit and sleep; one thread of the store
    # commits and flushes, so no request waits to take over the commit.
    ran_on = []
    execute, flush = store._conn.execute, store._flush_wal
    monkeypatch.setattr(
        store,
        "_conn",
        type(
            "Conn",
            (),
            {
                "execute": lambda _, sql, *a: (
                    ran_on.append(threading.current_thread().name),
                    execute(sql, *a),
                )[1]
            },
        )(),
    )
    monkeypatch.setattr(
        store, "_flush_wal", lambda: (ran_on.append(threading.current_thread().name), flush())
    )
    results: list = []
    for worker in _start_visits(store, 8, results):
        worker.join(10)
    assert sorted(results) == list(range(1, 9))
    assert ran_on and set(ran_on) == {"visit-writer"}


def test_close_answers_the_waiting_visits_then_refuses_more(db_path, monkeypatch):
    store = VisitStore(db_path)
    entered, release = _hold_the_first_flush(store, monkeypatch)
    results: list = []
    workers = _start_visits(store, 1, results)
    assert entered.wait(10)
    workers += _start_visits(store, 3, results)
    _wait_for(lambda: store._queue.qsize() == 3)
    closing = threading.Thread(target=store.close)
    closing.start()
    release.set()
    closing.join(10)
    for worker in workers:
        worker.join(10)
    assert sorted(results) == [1, 2, 3, 4]
    assert not store._writer.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        store.record_visit()
    reopened = VisitStore(db_path)
    assert reopened.count() == 4
    reopened.close()


def test_a_failed_flush_stops_all_counting(store, monkeypatch):
    """After a failed fdatasync the file's state is unknown: the visits of
    that transaction fail, and so does every later one, and reading the
    count (liveness); the app is told, to restart."""
    told = []
    store._on_log_flush_error = told.append
    assert store.record_visit() == 1

    def fail(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", fail)
    with pytest.raises(LogFlushError, match="Input/output error"):
        store.record_visit()
    monkeypatch.undo()  # the disk answers again: still nothing is counted
    with pytest.raises(LogFlushError):
        store.record_visit()
    with pytest.raises(LogFlushError):
        store.count()
    assert len(told) == 1
