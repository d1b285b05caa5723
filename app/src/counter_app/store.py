"""The visit count, kept in one SQLite row.

SQLite comes from APSW, which bundles its own library: Litestream and the app
write the same WAL database, and SQLite before 3.51.3 can corrupt a WAL file
when two processes write and checkpoint it at once. Debian 12's Python links
SQLite 3.40.1, so the stdlib ``sqlite3`` module is not used.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable

import apsw

from counter_app.replicated_ack import NotReplicated, ReplicationGate

MIN_SQLITE = (3, 51, 3)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS visits (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    count INTEGER NOT NULL CHECK (count >= 0)
) STRICT;
"""

# One statement, one row: O(1) whatever the count, atomic in autocommit.
# It counts every visit of a group at once (see VisitStore).
_RECORD_VISITS = """
INSERT INTO visits (id, count) VALUES (1, :visits)
ON CONFLICT (id) DO UPDATE SET count = count + excluded.count
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


class LogFlushError(RuntimeError):
    """The write-ahead log could not be flushed to disk. After a failed
    fdatasync the kernel may have dropped the unwritten pages: what the file
    holds is unknown, so no visit is counted or answered again by this
    process. A restart (systemd's Restart=) recovers from what is on disk."""


class _Visit:
    """One visit waiting for the transaction that counts it."""

    __slots__ = ("error", "number", "wake")

    def __init__(self, wake: threading.Lock) -> None:
        self.wake = wake  # held by its thread; released when the visit is settled
        self.number = 0
        self.error: BaseException | None = None


class VisitStore:
    """A SQLite database in WAL mode holding the visit count.

    Group commit by one writer thread: the visits waiting at a moment go into
    one transaction, committed and flushed by the store's writer thread while
    the requests that made them sleep, each on a lock of its own thread (no
    shared condition: waking N visits is N lock releases). Each visit gets its
    own exact number, and its answer only once the transaction holding it is
    on disk. Visits that arrive meanwhile wait for the next transaction, which
    the writer starts as soon as it has answered the last one. The writer
    never has to be woken between two transactions while visits keep coming,
    and no request thread has to win the interpreter's lock to take over the
    commit (the handoff that made the leader-follower scheme this replaced
    slow under load). One connection, used under one lock: requests wait in
    Python, never in SQLite's busy handler; the busy timeout is left for the
    short locks Litestream takes when it checkpoints.

    Durability, as ``synchronous = FULL``: a visit is answered after the
    write-ahead log holding it was flushed to disk (fdatasync), so every
    answered visit survives a crash or power cut of a host whose disk
    survives. SQLite runs with ``synchronous = NORMAL`` (no flush in the
    commit) and the writer flushes the log itself after each transaction,
    once SQLite's write lock is released: what FULL does, once per group
    (measured against FULL on the project's machine: about 1.35 times the
    throughput). A host that loses its disk is restored from the replica
    and loses what Litestream had not shipped yet (about a second of writes
    at most: the power-cut drill).
    """

    def __init__(
        self,
        path: str,
        busy_timeout_ms: int = 5000,
        on_log_flush_error: Callable[[LogFlushError], None] | None = None,
        gate: ReplicationGate | None = None,
    ) -> None:
        if sqlite_version() < MIN_SQLITE:
            raise RuntimeError(
                f"SQLite {apsw.sqlite_lib_version()} is affected by the WAL-reset "
                f"bug; {'.'.join(map(str, MIN_SQLITE))} or newer is required"
            )
        self._path = path
        self._lock = threading.Lock()  # the connection, one user at a time
        # Visits to count, in arrival order, taken by the writer only. A
        # SimpleQueue: a request adds its visit without a Python lock (no
        # request ever waits for another to append), and the writer sleeps
        # in get() when there is nothing to count.
        self._queue: queue.SimpleQueue[_Visit | None] = queue.SimpleQueue()
        self._closed = False
        self._broken: LogFlushError | None = None
        self._on_log_flush_error = on_log_flush_error
        self._gate = gate
        self._wakes = threading.local()
        self._wal_fd: int | None = None
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
        self._conn.execute("PRAGMA synchronous = NORMAL")  # the store flushes: _flush_wal
        # Flushed with the first visit (the table alone is worth no flush).
        self._conn.execute(_SCHEMA)
        self._writer = threading.Thread(target=self._write, name="visit-writer", daemon=True)
        self._writer.start()

    def record_visit(self) -> int:
        """Count one visit and return the new total, once it is on disk."""
        if self._closed:
            raise RuntimeError("the visit store is closed")
        if self._broken is not None:
            raise self._broken
        try:
            wake = self._wakes.lock
        except AttributeError:
            wake = self._wakes.lock = threading.Lock()
        wake.acquire()
        visit = _Visit(wake)
        self._queue.put(visit)
        if self._gate is None:
            wake.acquire()  # until the writer settles the visit
        elif not wake.acquire(timeout=self._gate.timeout):  # or the gate
            # Given up: the gate releases this lock later, so the next visit
            # of this thread sleeps on a new one.
            del self._wakes.lock
            raise NotReplicated(self._gate.reason())
        wake.release()
        if visit.error is not None:
            raise visit.error
        return visit.number

    def _write(self) -> None:
        """The writer thread: one transaction, and its flush, for all the
        visits waiting at a time; sleeps when there are none. Ends at the
        None that close() queues, after counting the visits before it."""
        get, get_nowait, empty = self._queue.get, self._queue.get_nowait, self._queue.empty
        while True:
            group = [get()]
            while not empty():  # the only taker: what is there stays there
                group.append(get_nowait())
            if None in group:
                end = group.index(None)
                group, late = group[:end], [v for v in group[end:] if v is not None]
                if group:
                    self._commit(group)
                closed = RuntimeError("the visit store is closed")
                for visit in late:  # came in as it closed: not counted
                    visit.error = closed
                    visit.wake.release()
                return
            self._commit(group)

    def _commit(self, group: list[_Visit]) -> None:
        """Count ``group`` in one transaction, flush it, then answer it."""
        try:
            if self._broken is not None:
                raise self._broken
            with self._lock:
                # fetchall(): the statement runs to its end, where SQLite
                # commits (autocommit), before the log is flushed.
                ((total,),) = self._conn.execute(_RECORD_VISITS, {"visits": len(group)}).fetchall()
            try:
                self._flush_wal()
            except OSError as error:
                self._broken = LogFlushError(
                    f"the database's write-ahead log could not be flushed to disk ({error}): "
                    "no visit is counted until the app restarts"
                )
                if self._on_log_flush_error is not None:
                    self._on_log_flush_error(self._broken)
                raise self._broken from error
            first = total - len(group) + 1
            for place, visit in enumerate(group):
                visit.number = first + place
        except BaseException as error:  # noqa: BLE001 - every visit of the group fails with it
            for visit in group:
                visit.error = error
        else:
            if self._gate is not None:  # answered once the replica holds it
                self._gate.hold(group)
                return
        for visit in group:
            visit.wake.release()

    def _flush_wal(self) -> None:
        # The log exists from the first write on and is never removed while
        # this connection is open (truncated and reused, same file).
        if self._wal_fd is None:
            self._wal_fd = os.open(self._path + "-wal", os.O_RDONLY | os.O_CLOEXEC)
        os.fdatasync(self._wal_fd)  # what SQLite itself uses to sync on Linux

    def count(self) -> int:
        """The current total, without counting."""
        if self._broken is not None:
            raise self._broken
        with self._lock:
            row = self._conn.execute("SELECT count FROM visits WHERE id = 1").fetchone()
        return 0 if row is None else row[0]

    def close(self) -> None:
        """Answer the visits already waiting, then close the database. Call
        it once no more visits come (the server closed): a visit that starts
        as it closes fails, or at worst waits."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
        if self._writer is not threading.current_thread():
            self._writer.join()
        with self._lock:
            self._conn.close()
            if self._wal_fd is not None:
                os.close(self._wal_fd)
                self._wal_fd = None
