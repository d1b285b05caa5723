"""Is every write on its way to the replica? Asked of Litestream itself.

A background thread asks Litestream's control socket once a second for the
database's local position and the position the replica has confirmed
(``POST /sync``: Litestream takes up the WAL and answers ``txid`` and
``replicated_txid``). A local position the replica has not confirmed is a
write in flight; the age of the oldest one is the replication lag.

Readiness is red when Litestream has not answered for a few seconds (stopped,
killed, restarting) or when the lag exceeds the limit (the store is away or
too slow). Liveness does not ask this.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("counter_app.replication")

Position = tuple[int, int]  # (local txid, replicated txid)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str


@dataclass(frozen=True)
class State:
    """What the monitor knows, for the metrics: Litestream answering, the
    lag, readiness, and the last (local, replicated) position it answered."""

    up: bool
    lag: float
    ready: bool
    position: Position | None


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("litestream", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def socket_position(
    socket_path: str, db_path: str, wait: bool = False, timeout: float = 2.0
) -> Position:
    """Ask Litestream's control socket where the database and its replica stand.

    With ``wait``, Litestream uploads what is pending right away (and answers
    once the replica has it): after a store outage this cuts its retry
    back-off, which grows to minutes, short.
    """
    conn = _UnixHTTPConnection(socket_path, timeout + 3 if wait else timeout)
    try:
        body = {"path": db_path}
        if wait:
            body.update(wait=True, timeout=max(1, int(timeout)))
        conn.request(
            "POST",
            "/sync",
            body=json.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        response = conn.getresponse()
        data = json.loads(response.read() or b"{}")
    finally:
        conn.close()
    if response.status != 200:
        raise OSError(f"Litestream answered {response.status}: {data.get('error', data)}")
    replicated = data.get("replicated_txid", data.get("replica_txid", 0))
    return int(data["txid"]), int(replicated)


class ReplicationMonitor:
    """Tracks the replication lag of one database from Litestream's answers."""

    def __init__(
        self,
        query: Callable[[], Position],
        max_lag: float,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        push: Callable[[], Position] | None = None,
        push_after: float = 5.0,
    ) -> None:
        self._query = query
        # Asked to upload now when writes wait longer than push_after, at most
        # once per push_after: the store's return is then noticed in seconds.
        self._push = push
        self.push_after = push_after
        self._last_push = float("-inf")
        self._pushing = threading.Lock()
        self.max_lag = max_lag
        self.interval = interval
        self.down_after = max(3.0, 3 * interval)
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: deque[tuple[int, float]] = deque()  # (local txid, first seen)
        self._last_local = -1
        self._last_ok: float | None = None
        self._last_error = "no answer yet"
        self._position: Position | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> None:
        """Ask once and update the state."""
        now = self._clock()
        try:
            local, replicated = self._query()
        except (OSError, ValueError, KeyError) as error:
            with self._lock:
                self._last_error = str(error) or type(error).__name__
            return
        with self._lock:
            if local > self._last_local:
                self._pending.append((local, now))
                self._last_local = local
            elif local < self._last_local:  # a restored or reset database
                self._pending.clear()
                self._last_local = local
            while self._pending and self._pending[0][0] <= replicated:
                self._pending.popleft()
            self._last_ok = now
            self._position = (local, replicated)

    def lag(self) -> float:
        with self._lock:
            return self._clock() - self._pending[0][1] if self._pending else 0.0

    def verdict(self) -> Verdict:
        now = self._clock()
        with self._lock:
            last_ok, error, position = self._last_ok, self._last_error, self._position
            oldest = self._pending[0][1] if self._pending else None
        if last_ok is None or now - last_ok > self.down_after:
            return Verdict(
                False,
                f"replication down: Litestream does not answer on its control socket ({error})",
            )
        lag = now - oldest if oldest is not None else 0.0
        if lag > self.max_lag:
            local, replicated = position or (0, 0)
            return Verdict(
                False,
                f"replication behind: writes of the last {lag:.0f} s are not in the replica "
                f"(local txid {local}, replica txid {replicated}, limit {self.max_lag:g} s)",
            )
        return Verdict(True, "ok")

    def state(self) -> State:
        verdict = self.verdict()
        now = self._clock()
        with self._lock:
            up = self._last_ok is not None and now - self._last_ok <= self.down_after
            lag = now - self._pending[0][1] if self._pending else 0.0
            position = self._position
        return State(up=up, lag=lag, ready=verdict.ok, position=position)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="replication-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._maybe_push()
            self._stop.wait(self.interval)

    def _maybe_push(self) -> None:
        now = self._clock()
        if self._push is None or self.lag() <= self.push_after:
            return
        if now - self._last_push < self.push_after or self._pushing.locked():
            return
        self._last_push = now
        threading.Thread(target=self._push_once, name="replication-push", daemon=True).start()

    def _push_once(self) -> None:
        with self._pushing:
            try:
                self._push()
            except (OSError, ValueError, KeyError) as error:
                log.info("replica still behind: %s", error)
