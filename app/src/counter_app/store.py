"""The visit count, kept in one SQLite row.

SQLite comes from APSW, which bundles its own library: Litestream and the app
write the same WAL database, and SQLite before 3.51.3 can corrupt a WAL file
when two processes write and checkpoint it at once. Debian 12's Python links
SQLite 3.40.1, so the stdlib ``sqlite3`` module is not used.
"""

from __future__ import annotations

import contextlib
import os
import threading

import apsw

MIN_SQLITE = (3, 51, 3)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS visits (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    count INTEGER NOT NULL CHECK (count >= 0)
) STRICT;
"""

# One statement, one row: O(1) whatever the count, atomic in autocommit.
_RECORD_VISIT = """
INSERT INTO visits (id, count) VALUES (1, 1)
ON CONFLICT (id) DO UPDATE SET count = count + 1
RETURNING count;
"""


def sqlite_version() -> tuple[int, ...]:
    return tuple(int(part) for part in apsw.sqlite_lib_version().split("."))


def _create_with_umask(path: str) -> None:
    """Create a missing database file with the process's umask applied to
    0666, as other files are. SQLite itself creates it 0644 & ~umask, which
    would leave out the group that Litestream's account shares the database
    through (its -wal and -shm files take the database's mode)."""
    # It exists; or it cannot be made, which SQLite reports on open.
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


class VisitStore:
    """A SQLite database in WAL mode holding the visit count.

    Every use of the connection goes through one lock, so concurrent requests
    queue in Python instead of sleeping in SQLite's busy handler; the busy
    timeout is left for the short locks Litestream takes when it checkpoints.
    """

    def __init__(self, path: str, busy_timeout_ms: int = 5000) -> None:
        if sqlite_version() < MIN_SQLITE:
            raise RuntimeError(
                f"SQLite {apsw.sqlite_lib_version()} is affected by the WAL-reset "
                f"bug; {'.'.join(map(str, MIN_SQLITE))} or newer is required"
            )
        self._lock = threading.Lock()
        _create_with_umask(path)
        self._conn = apsw.Connection(path)
        self._conn.set_busy_timeout(busy_timeout_ms)
        # By default the last connection to close checkpoints the WAL into the
        # database and deletes it. When Litestream has not yet opened the
        # database (it does so lazily, about a second after it starts), those
        # last writes would then never be seen by it as WAL frames. Leave the
        # WAL alone on close: Litestream ships it and checkpoints it itself.
        self._conn.config(apsw.SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1)
        mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise RuntimeError(f"{path}: cannot switch to WAL mode (got {mode!r})")
        self._conn.execute(_SCHEMA)

    def record_visit(self) -> int:
        """Count one visit and return the new total."""
        with self._lock:
            return self._conn.execute(_RECORD_VISIT).fetchone()[0]

    def count(self) -> int:
        """The current total, without counting."""
        with self._lock:
            row = self._conn.execute("SELECT count FROM visits WHERE id = 1").fetchone()
        return 0 if row is None else row[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
