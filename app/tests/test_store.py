import os
from pathlib import Path

import apsw
import pytest

from counter_app import VisitStore
from counter_app.store import MIN_SQLITE, sqlite_version


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
