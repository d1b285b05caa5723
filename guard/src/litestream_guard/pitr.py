"""Point-in-time restore and clone: restore-plan (what a restore to a target
would fetch), restore-copy (the replica at a target into a file of its own),
restore-to (a target, or a database file, in place of the live database)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import systemd
from .accounts import own, require_root
from .dbfiles import integrity_errors, remove, sha256, side_files, swap
from .errors import EXIT_USAGE, Refused
from .host import Host
from .litestream import json_in, said
from .output import say
from .state import now, stamp

COMMANDS = ("restore-plan", "restore-copy", "restore-to")

# Litestream parses -timestamp with Go's time.RFC3339 (fractions of a second
# allowed) and -txid as exactly 16 hex digits.
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
TXID = re.compile(r"^(0x)?[0-9a-fA-F]{1,16}$")

TARGET_HELP = "TARGET is --latest, --timestamp RFC3339 or --txid HEX"


def register(commands: argparse._SubParsersAction) -> None:
    helps = {
        "restore-plan": "what a restore to TARGET would fetch (-dry-run), and where the "
        "database and its replica stand",
        "restore-copy": "operator: the replica at TARGET into --output PATH (full integrity "
        "check); nothing else is touched (a clone's source)",
        "restore-to": "operator: point-in-time restore of TARGET (or --from-file PATH) in "
        "place of the live database; the live file and its state are kept aside",
    }
    for name in COMMANDS:
        parser = commands.add_parser(name, help=helps[name], epilog=TARGET_HELP)
        parser.add_argument("--latest", action="store_true", help="the replica's newest state")
        parser.add_argument("--timestamp", default="", help="the last transaction before")
        parser.add_argument("--txid", default="", help="up to this transaction (hex)")
        parser.add_argument(
            "--json", action="store_true", help="the result alone on stdout, progress on stderr"
        )
        parser.add_argument("--timeout", type=float, default=3600, help="seconds (3600)")
        if name == "restore-copy":
            parser.add_argument("--output", type=Path, required=True)
        if name == "restore-to":
            parser.add_argument("--from-file", type=Path, help="a database file (a clone)")
        # Another destination (e.g. the one used before a switch): a Litestream
        # configuration naming it, and its environment file (credentials).
        parser.add_argument("--source-config", default="")
        parser.add_argument("--source-env", default="")
        parser.set_defaults(run=lambda host, opts, name=name: command(host, name, opts))


class Target:
    """Which state of the replica to restore: its newest (latest), the last
    transaction before a time, or up to a transaction ID (inclusive)."""

    def __init__(self, timestamp: str = "", txid: str = "", latest: bool = False) -> None:
        given = [bool(timestamp), bool(txid), latest]
        if given.count(True) != 1:
            raise Refused("give exactly one of --latest, --timestamp, --txid", EXIT_USAGE)
        self.timestamp = timestamp
        self.txid = 0
        self.latest = latest
        if timestamp:
            if not RFC3339.match(timestamp):
                raise Refused(
                    f"--timestamp {timestamp!r} is not RFC 3339 (e.g. 2026-11-30T17:05:00Z)",
                    EXIT_USAGE,
                )
            try:
                when = dt.datetime.fromisoformat(re.sub(r"\.\d+", "", timestamp))
            except ValueError as error:
                raise Refused(f"--timestamp {timestamp!r}: {error}", EXIT_USAGE) from None
            if when > dt.datetime.now(dt.UTC):
                raise Refused(
                    f"--timestamp {timestamp} is in the future (now {now()}): for the "
                    "newest state give --latest",
                    EXIT_USAGE,
                )
        if txid:
            if not TXID.match(txid) or int(txid, 16) == 0:
                raise Refused(
                    f"--txid {txid!r} is not a transaction ID (1-16 hex digits, not 0)",
                    EXIT_USAGE,
                )
            self.txid = int(txid, 16)

    def flags(self) -> list[str]:
        if self.timestamp:
            return ["-timestamp", self.timestamp]
        if self.txid:
            return ["-txid", f"{self.txid:016x}"]
        return []

    def __str__(self) -> str:
        if self.timestamp:
            return f"the last transaction before {self.timestamp}"
        if self.txid:
            return f"TXID {self.txid} ({self.txid:016x})"
        return "the replica's newest state"


def command(host: Host, name: str, opts: argparse.Namespace) -> None:
    if opts.json:
        # Progress on stderr, the result alone on stdout.
        with contextlib.redirect_stdout(sys.stderr):
            result = run(host, name, opts)
        print(json.dumps(result), flush=True)
    else:
        print(json.dumps(run(host, name, opts), indent=2), flush=True)


def run(host: Host, name: str, opts: argparse.Namespace) -> dict:
    source = getattr(opts, "from_file", None)
    if source and (opts.latest or opts.timestamp or opts.txid):
        raise Refused(
            "--from-file restores a file: give no --latest, --timestamp or --txid", EXIT_USAGE
        )
    target = None if source else Target(opts.timestamp, opts.txid, opts.latest)
    if opts.source_config:
        if source:
            raise Refused("--from-file restores a file: give no --source-config", EXIT_USAGE)
        if not os.access(opts.source_config, os.R_OK):
            raise Refused(f"--source-config {opts.source_config} cannot be read", EXIT_USAGE)
        host.litestream.source = (opts.source_config, opts.source_env)
    if name == "restore-plan":
        return restore_plan(host, target)
    if name == "restore-copy":
        return restore_copy(host, target, opts.output, opts.timeout)
    return restore_to(host, target, source, opts.timeout)


def _restore(host: Host, *, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """A restore from the replica (or the --source-config destination)."""
    try:
        return host.litestream.restore(json_output=True, source=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired:
        raise Refused(f"the restore did not finish within {timeout:.0f} s") from None


def restore_plan(host: Host, target: Target) -> dict:
    """What a restore to the target would fetch (Litestream's own
    -dry-run plan) and where the database and its replica stand now.
    Reads only."""
    timeout = host.settings.check_timeout + 60
    out = _restore(host, dry_run=True, target=target.flags(), timeout=timeout)
    if out.returncode != 0:
        raise Refused(f"No restore to {target}: {said(out)}")
    plan = json_in(out.stdout)
    _, replica = host.litestream.read_replica()
    source = host.litestream.source
    return {
        "db": str(host.db),
        "target": str(target),
        "from": f"the destination in {source[0]}" if source else "its replica",
        "restores_to_txid": int(plan["max_txid"], 16),
        "replica_txid": replica,
        "local_txid": host.litestream.local_txid(),
        "files": [{k: f[k] for k in ("level", "name", "size", "timestamp")} for f in plan["files"]],
    }


def restore_into(host: Host, target: Target, path: Path, timeout: float) -> int:
    """The replica at the target into path, checked with SQLite's full
    integrity check; returns the TXID it holds. Never overwrites."""
    leftovers = [path, *side_files(path)]
    if any(p.exists() for p in leftovers):
        raise Refused(f"{path} (or its -wal, -shm, .tmp) exists: not overwriting it")
    try:
        out = _restore(
            host, integrity_check="full", output=path, target=target.flags(), timeout=timeout
        )
        if out.returncode != 0 or not path.exists():
            raise Refused(f"The restore to {target} failed: {said(out)}")
    except BaseException:
        remove(leftovers)
        raise
    txid = int(json_in(out.stdout).get("txid") or "0", 16)
    say(f"Restored {target} into {path}: TXID {txid}, integrity check full: ok")
    return txid


def restore_copy(host: Host, target: Target, output: Path, timeout: float) -> dict:
    """The replica at the target into a file of its own: the source side
    of a clone. Neither the database, nor the units, nor the replica are
    touched."""
    require_root()
    if not output.parent.is_dir():
        raise Refused(f"{output.parent} is not a directory", EXIT_USAGE)
    txid = restore_into(host, target, output, timeout)
    os.chmod(output, 0o600)
    return {"output": str(output), "txid": txid, "sha256": sha256(output)}


def restore_to(host: Host, target: Target | None, source: Path | None, timeout: float) -> dict:
    """Point-in-time restore (or a clone's file) in place of the live
    database. The restored state is made before the units stop (except
    --latest, which must hold the last writes: it is restored once they
    have stopped), the live file and its Litestream state are moved
    aside, and an adopt request for the replica's newest TXID lets
    Litestream write the restored state as the replica's next one: the
    replica's position only moves forward, and everything it held stays
    restorable by TXID."""
    require_root()
    swap_lock = host.state.swap_lock
    with swap_lock.open("ab") as lock:
        own(swap_lock, host.settings)
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _restore_to(host, target, source, timeout)


def _restore_to(host: Host, target: Target | None, source: Path | None, timeout: float) -> dict:
    settings, db = host.settings, host.db
    staged = db.with_name(f"{db.name}.restore-{stamp()}")
    staged_files = [staged, *side_files(staged)]
    what = f"the database file {source}" if source else str(target)
    result: dict = {"db": str(db), "restored": what}
    try:
        if source:
            stage_file(source, staged)
            result["restored_txid"] = None
        elif target and not target.latest:
            result["restored_txid"] = restore_into(host, target, staged, timeout)
        say(f"Stopping {settings.app_unit} and {settings.unit} for the swap")
        try:
            systemd.stop_units(settings)
            replica = replica_holds_local(host)
            if target and target.latest and not source:
                result["restored_txid"] = restore_into(host, target, staged, timeout)
        except (Refused, subprocess.CalledProcessError, OSError, ValueError):
            say("Nothing was changed: starting the units again")
            systemd.start_app(settings)
            raise
        aside = swap(staged, db, settings)
        result |= {"replica_txid_before": replica, "kept_aside": str(aside)}
        if replica:
            host.state.write_adopt(
                {
                    "replica": host.destination,
                    "txid": replica,
                    "saved_as": str(aside),
                    "restored": what,
                }
            )
        say(
            f"{db} is now {what}; the live file and its Litestream state are kept in "
            f"{aside} (nothing deleted)"
        )
        try:
            systemd.start_app(settings)
        except Refused as error:
            raise Refused(f"{error}. {db} holds {what}; the live file is kept in {aside}") from None
        result["replica_txid_after"] = wait_replica_past(host, replica)
    finally:
        remove(staged_files)
    say(
        f"Replicating from the restored state: the replica went from TXID "
        f"{result['replica_txid_before']} to {result['replica_txid_after']}; its older "
        "states stay restorable with --txid"
    )
    return result


def stage_file(source: Path, staged: Path) -> None:
    """A database file given by the operator (a clone): copied beside
    the database, then SQLite's full integrity check on the copy."""
    if not source.is_file():
        raise Refused(f"{source} is not a file", EXIT_USAGE)
    with source.open("rb") as f:
        if f.read(16) != b"SQLite format 3\x00":
            raise Refused(f"{source} is not a SQLite database", EXIT_USAGE)
    shutil.copyfile(source, staged)
    with staged.open("rb+") as f:
        os.fsync(f.fileno())
    # immutable: read as it is, no -wal or -shm made beside it.
    found = integrity_errors(f"file:{staged}?immutable=1")
    if found:
        raise Refused(f"{source} fails SQLite's integrity check: {'; '.join(found[:5])}")
    say(f"Copied {source} to {staged}; integrity check: full, ok")


def replica_holds_local(host: Host) -> int:
    """Once the units have stopped: the replica's newest TXID, when it
    holds every local write (the stop's final sync reached the store)."""
    _, replica = host.litestream.read_replica(": try again later")
    local = host.litestream.local_txid()
    if local is not None and local > replica:
        raise Refused(
            f"The replica (TXID {replica}) does not hold the last local writes (TXID "
            f"{local}): the stop's final sync did not reach the store. Try again when it "
            "answers."
        )
    return replica


def wait_replica_past(host: Host, replica: int) -> int:
    """The replica confirms a TXID after `replica`: Litestream replicates
    the restored state as the replica's next one."""
    timeout = host.settings.stop_sync_timeout + 30
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        left = max(1, int(deadline - time.monotonic()))
        try:
            last = host.control.sync_position(wait=left, timeout=left + 5)[1]
            if last > replica:
                return last
        except host.control.ERRORS as error:
            last = error  # 409 until Litestream has opened the database
        time.sleep(0.25)
    raise Refused(
        f"Restored and started, but the replica has not gone past TXID {replica} within "
        f"{timeout} s (last: {last}): see `journalctl -u {host.settings.unit}`"
    )
