"""Acknowledge a visit only once the replica holds it (opt-in).

By default a visit is answered once its transaction is on the host's disk;
Litestream ships it about a second later, so a host that loses its disk
loses the visits of that second although they were answered. In this mode
the store's writer hands each committed group to a :class:`ReplicationGate`
instead of answering it; the gate's thread asks Litestream over its control
socket to sync and wait (``POST /sync`` with ``wait``: the WAL becomes an
L0 file and everything pending is uploaded before it answers), once for all
the groups committed before the call, never per visit. Litestream answers
its local position ``txid`` (which covers every one of those groups, since
they were committed before it read the WAL) and ``replicated_txid``; the
gate answers the groups whose covering txid the replica holds. Groups that
commit while a call is out wait for the next one, which starts as soon as
the last one answered: under load one call carries many groups.

Two measured refinements (bench/ack.py, docs/bench.md). Under load the
visits come back in cohorts (those the last answer woke, then those it did
not), so before a call the gate waits, at most ``GATHER_AT_MOST``, until as
many visits wait as the last answer woke: one call then takes what would
have been two (a visit alone, as with one client, is not kept waiting: the
last answer woke one). And an answer that confirms nothing new for the
held groups while the replica did move on (Litestream's own loop made a
file between the call's sync and its answer, so the call's txid is one past
what it uploaded) is followed by the next call at once, not after a pause.

A visit whose group the replica has not confirmed within the bound is given
up by its request (``NotReplicated``, an HTTP 503): it may have been
counted locally and then reaches the replica later, with the writes after
it. No visit is ever answered 200 before the replica confirmed it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from litestream_control import ERRORS, Position

log = logging.getLogger("counter_app.replicated_ack")

# After a failed call (Litestream not answering, or answering an error), or
# one whose replica did not move, the next one waits this long, so a stopped
# or stuck Litestream is not asked in a tight loop.
RETRY_AFTER_ERROR = 0.1

# How long a call may wait for the visits of the cohort the last answer
# woke (see the module's text): about the time the app takes to answer 32
# visits and take the next ones in on the lab (6-7 ms). Measured at 32
# connections on the SFTP lab, Litestream as the role sets it for this
# mode (3 rounds, same run, req/s): 4 ms 1,880-2,020, 8 ms 2,140-2,260,
# 16 ms 2,080-2,340 (every call then carried all 32).
GATHER_AT_MOST = 0.008


class NotReplicated(RuntimeError):
    """The replica did not confirm the visit within the bound. It may have
    been counted locally: it then reaches the replica later."""


class Settled(Protocol):
    """What the gate needs of a visit: the lock its request sleeps on,
    released once the visit is settled (store._Visit)."""

    wake: threading.Lock


@dataclass(frozen=True)
class GateState:
    """For the metrics and readiness."""

    waiting: int  # visits whose requests wait for the replica to confirm them
    last_wait: float  # seconds the last confirmed group waited for the replica
    syncs: int  # calls to Litestream that answered
    sync_errors: int  # calls that failed
    last_error: str


class ReplicationGate:
    """Holds committed groups of visits until the replica holds them.

    ``sync(wait)`` asks Litestream to sync and wait up to ``wait`` whole
    seconds and returns (local txid, replicated txid). ``timeout`` is how
    long a visit's request waits in all, its commit included.
    """

    def __init__(
        self,
        sync: Callable[[int], Position],
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sync = sync
        self.timeout = timeout
        self._clock = clock
        self._cond = threading.Condition()
        # Committed before the next call: (commit time, group).
        self._new: list[tuple[float, Sequence[Settled]]] = []
        self._last_woken = 0  # visits woken by the last answer that settled any
        self._last_replicated = 0  # the replica's txid in the last answer
        # Covered by an answered call but not yet confirmed by the replica,
        # or committed before calls that failed: (covering txid or None, time, group).
        self._held: list[tuple[int | None, float, Sequence[Settled]]] = []
        self._closed = False
        self._waiting = 0
        self._last_wait = 0.0
        self._syncs = 0
        self._sync_errors = 0
        self._last_error = ""
        self._thread = threading.Thread(target=self._run, name="replication-gate", daemon=True)
        self._thread.start()

    def hold(self, group: Sequence[Settled]) -> None:
        """Called by the writer once ``group`` is committed and flushed:
        its visits are answered when the replica holds it."""
        with self._cond:
            self._new.append((self._clock(), group))
            self._waiting += len(group)
            self._cond.notify()

    def state(self) -> GateState:
        with self._cond:
            return GateState(
                self._waiting, self._last_wait, self._syncs, self._sync_errors, self._last_error
            )

    def reason(self) -> str:
        """Why a visit is not acknowledged (for its 503)."""
        with self._cond:
            error = self._last_error
        why = f" (Litestream: {error})" if error else ""
        return (
            f"not acknowledged: the replica did not confirm this visit within {self.timeout:g} s"
            f"{why}; it may have been counted here and then reaches the replica later"
        )

    def close(self) -> None:
        """Stop after settling what is held, for at most ``timeout``
        seconds; visits still held then are left to their requests' bound."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=self.timeout + 5)

    def _run(self) -> None:
        deadline: float | None = None
        while True:
            with self._cond:
                while not (self._new or self._held or self._closed):
                    self._cond.wait()
                if self._closed:
                    if not (self._new or self._held):
                        return
                    if deadline is None:
                        deadline = self._clock() + self.timeout
                    elif self._clock() > deadline:
                        return
                elif not self._held:  # held groups (a raced call) go at once
                    self._gather()
                # Every group taken here was committed before the call below.
                batch, self._new = self._new, []
                self._held.extend((None, when, group) for when, group in batch)
                self._forget_given_up()
            try:
                local, replicated = self._sync(max(1, round(self.timeout)))
            except ERRORS as error:
                with self._cond:
                    self._sync_errors += 1
                    self._last_error = str(error) or type(error).__name__
                    self._pause()
                continue
            if not self._settle(local, replicated):
                with self._cond:  # answered, but nothing confirmed: not in a tight loop
                    self._pause()

    def _pause(self) -> None:
        """RETRY_AFTER_ERROR in full (new visits do not cut it short; close()
        does). Called with the condition held."""
        until = time.monotonic() + RETRY_AFTER_ERROR
        while not self._closed and (left := until - time.monotonic()) > 0:
            self._cond.wait(left)

    def _gather(self) -> None:
        """Wait, at most GATHER_AT_MOST, until as many visits wait as the
        last answer that settled any woke. Called with the condition held."""
        until = time.monotonic() + GATHER_AT_MOST  # real waiting, whatever the clock
        while sum(len(group) for _, group in self._new) < self._last_woken and not self._closed:
            left = until - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(left)

    def _forget_given_up(self) -> None:
        """Drop the groups whose requests have all given up (committed more
        than the bound ago, plus a second for a late thread): nobody waits
        on them, and a cover that can no longer be reached (Litestream began
        a new history, numbered from 1) would keep them forever. They are
        not answered, only forgotten: their visits reach the replica with
        the writes after them. Called with the condition held."""
        oldest = self._clock() - self.timeout - 1
        kept = [entry for entry in self._held if entry[1] >= oldest]
        if len(kept) < len(self._held):
            self._waiting -= sum(len(g) for _, when, g in self._held if when < oldest)
            self._held = kept

    def _settle(self, local: int, replicated: int) -> bool:
        """Answer the held groups the replica now holds; False when none
        and the replica did not move since the last answer (worth a pause)."""
        now = self._clock()
        done: list[Settled] = []
        with self._cond:
            self._syncs += 1
            self._last_error = ""
            moved, self._last_replicated = replicated != self._last_replicated, replicated
            held = []
            for cover, when, group in self._held:
                cover = local if cover is None else cover
                if cover <= replicated:
                    done.extend(group)
                    self._last_wait = now - when
                else:  # the call raced a later sync: the next call settles it
                    held.append((cover, when, group))
            self._held = held
            self._waiting -= len(done)
            if done:
                self._last_woken = len(done)
        for visit in done:
            visit.wake.release()
        return bool(done) or moved
