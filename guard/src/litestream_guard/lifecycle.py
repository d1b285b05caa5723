"""Litestream's unit and the app's: start (ExecStartPre: back off a loop,
restore a missing database, check the position of an existing one), started
(ExecStartPost), stop (ExecStop), stopped (ExecStopPost), app-stopped (the
app's ExecStopPost), and
the operator's two ways out of a refused start: restore-from-replica and
adopt-local."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time

from . import history, systemd
from .accounts import own, require_root, share
from .dbfiles import aside_dir, move_aside, remove_stale
from .errors import EXIT_REFUSED, Refused, StoreUnreachable
from .history import foreign, guard_command, left_as_it_was, rollback, ways_out
from .host import Host
from .litestream import max_txid, restorable_to
from .output import say, warn

QUICK_RESTART = 30  # seconds between starts that make them a loop (back_off)


def register(commands: argparse._SubParsersAction) -> None:
    add = commands.add_parser
    add(
        "start",
        help="ExecStartPre of litestream.service: restore a missing database, refuse a rollback",
        description="Exit 0 lets Litestream start; anything else keeps it (and so the app) "
        "down, and systemd retries (1) or the operator decides (3).",
    ).set_defaults(run=lambda host, opts: start(host))
    add("stop", help="ExecStop: wait until the replica holds the last write").set_defaults(
        run=lambda host, opts: stop(host)
    )
    add(
        "started",
        help="ExecStartPost: start the app unit, whose start was skipped while Litestream "
        "could not run",
    ).set_defaults(run=lambda host, opts: started(host))
    parser = add(
        "app-stopped",
        help="ExecStopPost of the app unit: stop Litestream after the app, on a real stop only",
    )
    parser.add_argument("unit", nargs="?", default="", help="the app's unit")
    parser.set_defaults(run=lambda host, opts: app_stopped(host, opts.unit))
    add(
        "stopped",
        help="ExecStopPost: when Litestream ended without success and the app does not run, "
        "close the app's listener",
    ).set_defaults(run=lambda host, opts: litestream_stopped(host))
    add(
        "restore-from-replica",
        help="operator: keep the local file aside, restore the replica",
    ).set_defaults(run=lambda host, opts: restore_from_replica(host))
    add(
        "adopt-local",
        help="operator: keep the replica's newest state aside, go on from the local file",
    ).set_defaults(run=lambda host, opts: adopt_local(host))


# -- start -----------------------------------------------------------------------


def start(host: Host) -> None:
    systemd.notify_status("")  # what an earlier start showed
    host.state.restoring_path.unlink(missing_ok=True)  # a killed restore's progress
    back_off(host)
    if host.db.exists():
        say("Database already exists, skipping restore")
        check_position(host)
    else:
        say("No database found, restoring from replica if exists")
        restore_missing(host)


def back_off(host: Host) -> None:
    """systemd restarts Litestream RestartSec (a fraction of a second)
    after any exit, with no start limit: a crash is mended at once. Starts
    that follow one another within QUICK_RESTART seconds are a loop (the
    store away, a refused rollback): each waits twice as long as the one
    before, up to restart_max seconds. (Debian 12's systemd has no
    RestartSteps=.)"""
    path = host.state.starts_path
    now = time.time()
    try:
        last = json.loads(path.read_text())
        quick = 0 <= now - last["at"] < QUICK_RESTART
        streak = last["streak"] + 1 if quick else 0
    except (OSError, ValueError, KeyError, TypeError):
        streak = 0
    wait = min(host.settings.restart_max, 0.1 * 2**streak) if streak else 0.0
    if wait >= 1:
        say(
            f"Start {streak + 1} in a row, each within {QUICK_RESTART} s of the last: "
            f"waiting {wait:.0f} s"
        )
    time.sleep(wait)
    try:
        path.write_text(json.dumps({"at": time.time(), "streak": streak}))
    except OSError as error:
        warn(f"cannot record this start in {path}: {error}")


def restore_missing(host: Host) -> None:
    settings, db = host.settings, host.db
    started = time.monotonic()
    host.state.request_path.unlink(missing_ok=True)
    remove_stale(db)
    files, txid = host.litestream.read_replica(": not starting on an empty database, will retry")
    if not files:
        say("The replica path holds nothing yet: starting with a new database")
        host.state.write_record(0, "empty replica")
        return
    mode = settings.integrity_check
    try:
        out = host.litestream.restore(
            if_db_not_exists=True,
            integrity_check=mode,
            timeout=settings.restore_timeout,
            report_progress=True,
        )
        said = " ".join((out.stderr + out.stdout).split())[-600:]
        code = out.returncode
    except subprocess.TimeoutExpired:
        said, code = f"timed out after {settings.restore_timeout} s", -1
    if code != 0 or not db.exists():
        db.with_name(db.name + ".tmp").unlink(missing_ok=True)
        if code == 0:
            raise Refused(
                f"The replica holds {len(files)} LTX files up to TXID {txid} but no "
                f"restorable backup (Litestream said: {said}). The replica is damaged: "
                "not starting on an empty database, will retry. Inspect it with "
                "`litestream ltx -level all`; restore an older state with "
                "`litestream restore -txid`."
            )
        raise Refused(f"Restore failed ({said}): not starting on an empty database, will retry")
    share(db)
    took = time.monotonic() - started  # reading the replica, fetch, apply, check
    say(f"Restored {db} from the replica (TXID {txid}, integrity check: {mode}) in {took:.1f} s")
    systemd.notify_status(f"Restored from the replica at this start (TXID {txid}, {took:.1f} s)")
    host.state.write_record(txid, "restored")


def _no_state(host: Host, replica: int) -> str:
    return (
        f"REFUSED: {host.db} exists but has no Litestream state, while its replica "
        f"holds TXID {replica}. Starting would replace the replica's newest state "
        f"with this file. {ways_out(guard_command(host.settings.unit))}"
    )


def check_position(host: Host) -> None:
    state, destination = host.state, host.destination
    local = host.litestream.local_txid()
    try:
        files = host.litestream.replica_files()
    except StoreUnreachable as error:
        record = state.read_record()
        trusted = host.settings.trust_record_when_unreachable
        if trusted and record and local is not None and local >= record["txid"]:
            warn(
                f"The replica store cannot be read ({error}). The local database is at "
                f"TXID {local}, not behind the replica's last known TXID {record['txid']} "
                f"({record['at']}): starting; Litestream ships the backlog once the store "
                "is back."
            )
            return
        known = f"TXID {record['txid']}" if record else "unknown"
        if not trusted:
            known += " (not trusted: litestream_start_with_store_unreachable is off)"
        raise Refused(
            f"The replica store cannot be read ({error}) and the local database "
            f"(TXID {local if local is not None else 'unknown'}) cannot be checked "
            f"against it (last known replica position: {known}): not starting, will retry"
        ) from None
    history.note_departure(host, local)
    current = state.read_record()
    request = state.history_request()
    if request:
        if local is not None and current and local < current["txid"]:
            raise Refused(rollback(host, local, current["txid"]), EXIT_REFUSED)
        history.begin(host, request["why"], files)
        state.request_path.unlink(missing_ok=True)
        return
    if not files:
        if local is None:
            say("The replica path holds nothing yet: Litestream uploads a snapshot")
            state.write_record(0, "empty replica")
        else:
            history.begin(
                host,
                f"the replica path {destination} holds no LTX file at any level (a new "
                f"destination, or this one emptied) while Litestream's local state is at "
                f"TXID {local}: Litestream could not resume there",
                files,
            )
        return
    replica = max_txid(files)
    adopt = state.adopt_request(replica)
    if adopt:
        what = adopt.get("restored") or f"the local database (TXID {local})"
        say(
            f"Adopting on purpose {what}; the replica's TXID {replica} state was saved "
            f"as {adopt['saved_as']}. Litestream now writes the local file as the "
            "replica's newest state (the request stays until the replica is past "
            f"TXID {replica})."
        )
        return
    if current is None:
        if local is None:
            raise Refused(_no_state(host, replica), EXIT_REFUSED)
        known = state.destinations().get(destination)
        if left_as_it_was(known, replica):
            history.return_to(host, known, files, replica)
            return
        raise Refused(
            foreign(destination, files, replica, known, guard_command(host.settings.unit)),
            EXIT_REFUSED,
        )
    if local is not None and local < current["txid"]:
        raise Refused(rollback(host, local, current["txid"]), EXIT_REFUSED)
    restorable = restorable_to(files)
    if restorable == 0:
        history.begin(
            host,
            f"the replica holds LTX files up to TXID {replica} but no restore plan (no "
            f"snapshot, no chain from TXID 1), while it had confirmed TXID "
            f"{current['txid']} to this host: it was emptied or lost its snapshot",
            files,
        )
        return
    if restorable < current["txid"]:
        raise Refused(
            foreign(
                destination,
                files,
                replica,
                f"it restores up to TXID {restorable} only, while this host had confirmed "
                f"TXID {current['txid']} there: another history was put in its place, or "
                "the store was brought back from an older backup",
                guard_command(host.settings.unit),
            ),
            EXIT_REFUSED,
        )
    if local is None:
        if current["how"] == "restored" and current["txid"] == replica:
            say(f"Restored database, replica at TXID {replica}: replicating on from it")
            return
        raise Refused(_no_state(host, replica), EXIT_REFUSED)
    if local < replica:
        raise Refused(rollback(host, local, replica), EXIT_REFUSED)
    say(f"Local TXID {local}, replica TXID {replica}: the replica is not ahead, replicating")
    state.write_record(replica, "checked")


# -- stop ------------------------------------------------------------------------


def stop(host: Host) -> None:
    """Return once the replica holds the last write, or once the store is
    known not to answer; systemd then sends SIGTERM."""
    if not os.environ.get("MAINPID"):
        return
    timeout = host.settings.stop_sync_timeout
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        left = max(1, int(deadline - time.monotonic()))
        try:
            local, replicated = host.control.sync_position(wait=left, timeout=left + 5)
        except host.control.ERRORS as error:
            # 409: Litestream has not opened the database yet (it does so
            # on its first tick, about a second after it starts).
            last = error
            time.sleep(0.25)
            continue
        say(f"The replica holds TXID {replicated} (local {local}): stopping")
        # The destination the running Litestream replicates to: the one
        # its start recorded (a deploy that switches destination has
        # already written the new settings when it stops this one).
        host.state.write_record(replicated, "stopped", host.state.running_destination())
        return
    warn(
        f"The replica store did not confirm the last writes within {timeout} s ({last}): "
        "they stay in the local WAL and Litestream ships them when it runs again"
    )


# -- ExecStartPost: the app may start now ----------------------------------------


def started(host: Host) -> None:
    """Start the app unless it runs or is about to. Its start is skipped
    (ExecCondition) while Litestream is not running; it accepts this unit
    in start-post, so a start job of the app that is polling now succeeds.
    One that already gave up is followed by a new start."""
    check_unit = host.settings.replica_check.unit
    if check_unit and host.state.history().get("pending"):
        systemd.start_no_block(check_unit)
    app = host.settings.app_unit
    if not app:
        return
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        kind, job_state = systemd.job(app)
        if job_state == "waiting":
            return  # queued behind this unit: it runs once this one is up
        if not kind:
            if not systemd.is_active_quiet(app):
                say(f"Replicating: starting {app}")
                systemd.start_no_block(app)
            return
        time.sleep(0.2)


# -- the app unit's ExecStopPost -------------------------------------------------


def app_stopped(host: Host, unit: str) -> None:
    """On a real stop of the app: its listener first (a connection must not
    start it again), then Litestream, whose final sync holds the last writes.
    A restart or a crash leaves both: clients wait in the listener's queue
    for the next process, Litestream replicates on."""
    job, _ = systemd.job(unit)
    name = host.settings.unit
    if job == "stop":
        for listener in systemd.triggered_by(unit):
            say(f"{unit} was stopped: stopping its listener {listener}")
            systemd.stop_no_block(listener)
        say(f"{unit} was stopped: stopping {name} after it (final sync)")
        systemd.stop_no_block(name)
    else:
        say(f"{unit} exited ({job or 'no stop job'}): {name} keeps replicating")


# -- ExecStopPost of Litestream's unit ---------------------------------------------


def litestream_stopped(host: Host) -> None:
    """Litestream's unit ended without success (its start refused or failed,
    or its process died) while the app does not run: close the app's
    listener, so no client waits in its queue for an app that must not
    start; Litestream's next successful start starts the app and, with it,
    the listener. A running app keeps its listener (and Upholds= brings
    Litestream back); so does a clean stop (the app's own stop closed it)."""
    app = host.settings.app_unit
    result = os.environ.get("SERVICE_RESULT", "success")
    if not app or result == "success" or systemd.is_active_quiet(app):
        return
    for listener in systemd.triggered_by(app):
        if systemd.is_active_quiet(listener):
            say(f"{host.settings.unit} ended ({result}) and {app} does not run: closing {listener}")
            systemd.stop_no_block(listener)


# -- the operator's ways out of a refused start ------------------------------------


def restore_from_replica(host: Host) -> None:
    require_root()
    systemd.stop_units(host.settings)
    aside = aside_dir(host.db, host.settings)
    move_aside(host.db, aside)
    say(f"The local database and its Litestream state are kept in {aside}")
    host.state.adopt_path.unlink(missing_ok=True)
    systemd.start_app(host.settings)
    say(f"{host.db} restored from the replica; nothing was deleted ({aside})")


def adopt_local(host: Host) -> None:
    require_root()
    settings = host.settings
    systemd.stop_units(settings)
    local = host.litestream.local_txid()
    _, replica = host.litestream.read_replica(": try again later")
    if local is not None and local >= replica:
        say(f"The local database (TXID {local}) is not behind the replica: nothing to adopt")
        systemd.start_app(settings)
        return
    aside = aside_dir(host.db, settings)
    saved = aside / f"replica-txid-{replica}.db"
    try:
        out = host.litestream.restore(
            integrity_check=settings.integrity_check, output=saved, timeout=settings.restore_timeout
        )
        why = out.stderr.strip()
        failed = out.returncode != 0 or not saved.exists()
    except subprocess.TimeoutExpired:
        why, failed = f"timed out after {settings.restore_timeout} s", True
    if failed:
        raise Refused(f"Could not save the replica's newest state aside ({why}): nothing adopted")
    own(saved, settings)
    host.state.write_adopt({"replica": host.destination, "txid": replica, "saved_as": str(saved)})
    say(f"The replica's newest state (TXID {replica}) is saved as {saved}")
    systemd.start_app(settings)
    say(f"{host.db} adopted: the replica now goes on from the local file")
