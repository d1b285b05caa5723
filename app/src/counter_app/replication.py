"""Is every write on its way to the replica? Asked of Litestream itself.

A background thread asks Litestream's control socket once a second for the
database's local position and the position the replica has confirmed
(``POST /sync``: Litestream takes up the WAL and answers ``txid`` and
``replicated_txid``). A local position the replica has not confirmed is a
write in flight; the age of the oldest one is the replication lag.

Readiness is red when Litestream has not answered for a few seconds (stopped,
killed, restarting), when the lag exceeds the limit (the store is away or
too slow), or when the guard's replica check says the replica cannot be
restored up to what Litestream confirmed, or that a new history waits for
its snapshot (or its last word is too old). Liveness does not ask this.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from litestream_control import ERRORS, Position

log = logging.getLogger("counter_app.replication")


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


def read_replica_check(path: str) -> dict | None:
    """The guard's replica check result (litestream-guard check): None when
    there is none yet; raises OSError or ValueError when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def replica_check_verdict(data: dict | None, now: float) -> Verdict | None:
    """Red when the check says the replica cannot be restored, when a new
    history waits for its snapshot, or when its word is older than it is
    good for; None when there is no word yet."""
    if data is None:
        return None
    reason = str(data.get("reason", ""))
    if data.get("new_history_pending"):
        return Verdict(False, f"replica history restarted, not yet in the store: {reason}")
    if data.get("restorable") is False:
        return Verdict(False, f"replica cannot be restored: {reason}")
    checked, valid = data.get("checked_unix"), data.get("valid_for", 120)
    numbers = isinstance(checked, int | float) and isinstance(valid, int | float)
    if numbers and now - checked > valid:
        return Verdict(
            False, f"replica check stale: last at {data.get('checked_at')}, good for {valid} s"
        )
    return Verdict(True, "ok")


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
        replica_check: str = "",
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._query = query
        # The guard's replica check result file ("": not read).
        self._replica_check_path = replica_check
        self._replica_check: dict | None = None
        self._replica_check_error = ""
        self._wall_clock = wall_clock
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
        if self._replica_check_path:
            try:
                found, error = read_replica_check(self._replica_check_path), ""
            except (OSError, ValueError) as problem:
                found, error = None, str(problem)
            with self._lock:
                self._replica_check, self._replica_check_error = found, error
        now = self._clock()
        try:
            local, replicated = self._query()
        except ERRORS as error:
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
        with self._lock:
            check, check_error = self._replica_check, self._replica_check_error
        if check_error:
            return Verdict(False, f"replica check unreadable: {check_error}")
        verdict = replica_check_verdict(check, self._wall_clock())
        if verdict is not None and not verdict.ok:
            return verdict
        return Verdict(True, "ok")

    def replica_check(self) -> dict | None:
        """The replica check's last result as read (None: none)."""
        with self._lock:
            return self._replica_check

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
            except ERRORS as error:
                log.info("replica still behind: %s", error)
