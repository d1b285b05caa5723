"""Destinations: the replica check (can the replica be restored up to what
Litestream confirmed? twice no: a new history), classify (what a new
destination holds, at deploy) and takeover (the operator's way onto a path
holding another history)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys

from . import systemd
from .accounts import require_root
from .errors import EXIT_REFUSED, Refused, StoreUnreachable
from .history import foreign, left_as_it_was
from .host import Host
from .litestream import max_txid
from .output import say, warn


def register(commands: argparse._SubParsersAction) -> None:
    commands.add_parser(
        "check",
        help="the replica check (litestream-replica-check.timer): can the replica be restored "
        "up to what Litestream confirmed? Twice no: a new history begins",
    ).set_defaults(run=lambda host, opts: check(host))
    parser = commands.add_parser(
        "classify",
        help="deploy: what the destination ID holds (its `litestream ltx -json -level all` on "
        "stdin); refuses another history",
    )
    parser.add_argument("id", nargs="?", default="", help="the destination (replica URL)")
    parser.add_argument("--takeover", action="store_true", help="take another history over")
    parser.set_defaults(run=lambda host, opts: classify(host, opts.id, opts.takeover))
    commands.add_parser(
        "takeover",
        help="operator: move what the destination holds aside under a dated prefix (never "
        "deleted) and begin this host's history there",
    ).set_defaults(run=lambda host, opts: takeover(host))


def check(host: Host) -> None:
    """Can the replica be restored up to what Litestream has confirmed?
    Asks Litestream for the position it confirmed, then for its own
    restore plan (`restore -dry-run`). Published for the app's readiness
    and metrics. Twice in a row no (this host's destination wiped, its
    snapshot gone): a new history begins, Litestream restarted for it."""
    settings, state, destination = host.settings, host.state, host.destination
    published = state.published() or {}
    history = state.history()
    pending = history.get("pending") or None
    if pending and pending.get("destination") != destination:
        pending = None
    now = dt.datetime.now(dt.UTC)
    result: dict = {
        "destination": destination,
        "checked_at": now.isoformat(timespec="seconds"),
        "checked_unix": now.timestamp(),
        "valid_for": settings.replica_check.valid_for,
        "history_restarts": int(history.get("restarts", 0)),
        "last_history": history.get("last"),
        "failures": 0,
    }

    def not_checked(reason: str, failures: int | None = None) -> None:
        """Published with no verdict: the count of failed checks is kept
        (unless said), readiness goes by the rest."""
        result.update(
            restorable=None,
            new_history_pending=bool(pending),
            reason=f"not checked: {reason}",
            failures=published.get("failures", 0) if failures is None else failures,
        )
        state.publish(result)

    try:
        wait = settings.check_timeout if pending else 0
        local, replicated = host.control.sync_position(wait=wait, timeout=wait + 3)
    except host.control.ERRORS as error:
        not_checked(f"Litestream does not answer ({error or type(error).__name__})")
        return
    result.update(local_txid=local, replicated_txid=replicated)
    running = state.running_destination()
    if running and running != destination:
        # A deploy has written new settings; Litestream still runs on the
        # old destination until its restart: nothing to compare yet.
        not_checked(f"switching from {running} to {destination}", failures=0)
        return
    if replicated == 0 and not pending:
        # Litestream says 0 before its first sync and after a sync error.
        not_checked("Litestream has confirmed no position yet")
        return
    try:
        reaches = host.litestream.plan_reaches()
    except StoreUnreachable as error:
        not_checked(f"the store does not answer ({error})")
        return
    result["restores_to_txid"] = reaches
    ok = reaches is not None and reaches >= replicated
    after = int(pending.get("after_txid", 0)) if pending else 0
    # Back on this host's own older history (after > 0), Litestream makes a
    # snapshot past it only when its sync finds the database moved on. On a
    # database that did not change (an idle host), its waited sync (above:
    # it runs Litestream's own check of the database against its position)
    # settles at the TXID it took over, which the replica holds: that is the
    # new history in the store too.
    settled = bool(wait) and after > 0 and replicated >= local >= after
    if pending and ok and (reaches > after or (settled and reaches >= local)):
        history["pending"] = None
        state.write_history(history)
        say(f"The replica restores up to TXID {reaches}: the new history is in the store")
        pending = None
    if ok:
        result.update(restorable=True, new_history_pending=bool(pending), reason="ok")
        if pending:
            result["reason"] = "waiting for the new history's snapshot in the store"
        state.adopt_request(reaches)  # removes one the replica is past
        record = state.read_record()
        if not pending and record and replicated > record["txid"]:
            state.write_record(replicated, "checked")
        state.publish(result)
        return
    why = (
        "Litestream's restore finds no plan"
        if reaches is None
        else f"a restore reaches only TXID {reaches}"
    ) + f", while Litestream confirmed TXID {replicated} in the replica"
    result.update(restorable=False, new_history_pending=bool(pending), reason=why)
    if pending:
        result["reason"] = f"waiting for the new history's snapshot in the store ({why})"
        state.publish(result)
        return
    result["failures"] = failures = int(published.get("failures", 0)) + 1
    state.publish(result)
    warn(f"THE REPLICA CANNOT BE RESTORED ({failures} check(s) in a row): {why}")
    if failures < settings.replica_check.failures_before_new_history:
        return
    state.request_history(destination, f"the replica cannot be restored: {why}")
    end_litestream(host, f"a new history begins at {destination}")


def end_litestream(host: Host, why: str) -> None:
    """SIGTERM to Litestream's process (the same account): its final
    sync, then systemd starts it again (Restart=always) through the
    start-up guard. The app keeps serving meanwhile."""
    unit = host.settings.unit
    pid = systemd.main_pid(unit)
    if pid <= 0:
        say(f"{unit} is not running: {why} at its next start")
        return
    say(f"Ending {unit} (PID {pid}) for its restart: {why}")
    os.kill(pid, signal.SIGTERM)


def classify(host: Host, destination: str, takeover: bool) -> None:
    """At a deploy that changes the replica's settings, before they are
    put in place: what the new destination holds (its `litestream ltx
    -json -level all` on stdin, read with the new settings), as the
    start-up guard will see it. A destination holding another history
    is refused here, the running settings untouched; with --takeover, a
    takeover of it is requested for the next start."""
    files = json.loads(sys.stdin.read() or "[]")
    state = host.state
    record = state.raw_record()
    if record and record.get("replica") == destination:
        kind, why = "same", "the destination this host replicates to"
    elif not files:
        kind, why = "empty", "empty: a new history begins there"
    elif not host.db.exists():
        kind, why = "restore", "the database is missing: it is restored from there"
    elif left_as_it_was(state.destinations().get(destination), max_txid(files)):
        kind, why = "own-older", "this host's own older history: it goes on there"
    else:
        message = foreign(
            destination, files, max_txid(files), state.destinations().get(destination)
        )
        if not takeover:
            raise Refused(
                message.replace("Not starting.", "Not switching.").replace(
                    "(as root on this host: `litestream-guard takeover`)",
                    "(deploy again with -e litestream_replica_takeover=true)",
                ),
                EXIT_REFUSED,
            )
        state.request_history(destination, "taken over at deploy (litestream_replica_takeover)")
        kind, why = "takeover", "another history: moved aside at the next start (takeover)"
    print(json.dumps({"destination": destination, "class": kind, "why": why}))


def takeover(host: Host) -> None:
    """The operator's way out of a refused start on a path holding
    another history: stop, request a new history here (at its start the
    guard moves the path's LTX files under <path>/aside-<time> and resets
    Litestream's local state), start, and wait for the new snapshot."""
    require_root()
    systemd.stop_units(host.settings)
    host.state.request_history(host.destination, "taken over by the operator (takeover)")
    systemd.start_app(host.settings)
    say(f"{host.destination} taken over: this host's history begins there")
