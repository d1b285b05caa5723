"""The scheduled restore drill (litestream-restore-drill.service): the
newest replica restored into scratch, checked with PRAGMA integrity_check,
compared with the live database through the probe query; the outcome
recorded for `status` and the app's metrics."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path

from .dbfiles import integrity_errors, remove, side_files
from .errors import Refused, StoreUnreachable
from .host import Host
from .litestream import max_txid, said
from .output import say, warn
from .settings import Drill


def register(commands: argparse._SubParsersAction) -> None:
    commands.add_parser(
        "restore-drill",
        help="restore the newest replica into scratch, check it, compare it with the live "
        "database, record the outcome",
    ).set_defaults(run=lambda host, opts: restore_drill(host))


def settings_of(host: Host) -> Drill:
    drill = host.settings.drill
    if drill is None:
        raise Refused("the guard's settings set no restore drill (drill): nothing to do")
    return drill


def probe(host: Host, path: Path) -> int | None:
    """The drill's probe query (a number that never decreases, e.g. the
    counter's visits) on a database opened read-only; None without one."""
    query = host.settings.drill.probe if host.settings.drill else ""
    if not query:
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        row = conn.execute(query).fetchone()
    finally:
        conn.close()
    if row is None or not isinstance(row[0], int):
        raise Refused(f"the probe query gave {row!r} on {path}, not a number")
    return row[0]


def _drill(host: Host, result: dict, scratch: Path) -> None:
    db = host.db
    if not db.exists():
        raise Refused(f"{db} does not exist: nothing to compare the replica with")
    result["live_count"] = before = probe(host, db)
    # Everything written up to now must be in the replica before it is
    # restored: Litestream uploads what is pending and answers once the
    # replica holds it (the drill fails when the store cannot take it).
    # The first answer's TXID covers every write before the drill. Under an
    # app that syncs all the time (the acknowledge-after-replication mode)
    # another sync may make a file between this call's upload and its
    # answer: the answer's TXID is then past what the replica was sent, and
    # the next call, within the same wait, confirms it (asked again while
    # the replica moves; one that does not move fails the drill at once).
    wait = host.settings.check_timeout
    deadline = time.monotonic() + wait
    local = replicated = -1
    while True:
        left = max(1, round(deadline - time.monotonic()))
        previous = replicated
        try:
            answered, replicated = host.control.sync_position(wait=left, timeout=left + 5)
        except host.control.ERRORS as error:
            raise Refused(f"Litestream did not confirm the replica's position: {error}") from None
        local = answered if local < 0 else local
        if replicated >= local or replicated == previous or time.monotonic() >= deadline:
            break
    if replicated < local:
        raise Refused(f"the replica holds TXID {replicated}, the database is at TXID {local}")
    files = host.litestream.replica_files()
    if not files:
        raise Refused("the replica holds nothing")
    result["replica_txid"] = replica = max_txid(files)
    if replica < local:
        raise Refused(
            f"the replica's files end at TXID {replica}, before the database's TXID {local}"
        )
    out = host.litestream.restore(
        integrity_check="full", output=scratch, timeout=settings_of(host).timeout
    )
    if out.returncode != 0 or not scratch.exists():
        raise Refused(f"the replica did not restore: {said(out)}")
    checked = integrity_errors(f"file:{scratch}?mode=ro")
    if checked:
        raise Refused(f"the restored copy fails PRAGMA integrity_check: {checked[:5]}")
    restored = probe(host, scratch)
    after = probe(host, db)
    result.update(restored_count=restored, live_count=after)
    if before is not None and not before <= restored <= after:
        raise Refused(
            f"the restored copy says {restored} where the live database said {before} "
            f"before the drill and {after} after it"
        )


def restore_drill(host: Host) -> None:
    swap_lock = host.state.swap_lock
    with contextlib.ExitStack() as held:
        if swap_lock.exists():
            lock = held.enter_context(swap_lock.open("rb"))
            try:
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                say("A restore is swapping the database (restore-to): drill skipped")
                return
        _restore_drill(host)


def _restore_drill(host: Host) -> None:
    drill = settings_of(host)
    scratch = drill.dir / "scratch.db"
    started = time.monotonic()
    result: dict = {"ok": False, "error": "", "replica_txid": None}
    result.update(restored_count=None, live_count=None)
    try:
        _drill(host, result, scratch)
        result["ok"] = True
    except (Refused, StoreUnreachable) as error:
        result["error"] = str(error)
    except (OSError, sqlite3.Error, subprocess.TimeoutExpired, ValueError) as error:
        result["error"] = f"{type(error).__name__}: {error}"
    finally:
        remove([scratch, *side_files(scratch)])
    now = dt.datetime.now(dt.UTC)
    result.update(
        finished_at=now.isoformat(timespec="seconds"),
        finished_unix=now.timestamp(),
        duration_seconds=round(time.monotonic() - started, 3),
    )
    target = drill.result
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, sort_keys=True) + "\n")
    tmp.chmod(0o640)
    tmp.replace(target)
    if not result["ok"]:
        raise Refused(f"RESTORE DRILL FAILED: {result['error']}")
    say(
        f"Restore drill passed in {result['duration_seconds']:.1f} s: the replica (TXID "
        f"{result['replica_txid']}) restored, passed integrity_check"
        + (
            f", and holds {result['restored_count']} (live: {result['live_count']})"
            if result["restored_count"] is not None
            else ""
        )
    )
    if drill.heartbeat_url:
        try:
            with urllib.request.urlopen(drill.heartbeat_url, timeout=10) as answer:
                answer.read(1024)
        except OSError as error:
            warn(f"The drill passed but its heartbeat URL did not answer: {error}")


def last_result(host: Host) -> dict | None:
    """The last drill's outcome, None when there is none (or no drill)."""
    if host.settings.drill is None:
        return None
    try:
        return json.loads(host.settings.drill.result.read_text())
    except (OSError, ValueError):
        return None
