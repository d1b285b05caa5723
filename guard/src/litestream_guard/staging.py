"""Restores at the speed of the wire (docs/restore-speed.md).

Litestream 0.5 reads the files of a restore one small request after another:
on SFTP about three round trips per page. Here, for SFTP and S3 replicas,
every restore (start-up, point in time, clone, drill) goes in three steps:

1. Litestream's own plan (`restore -dry-run -json`, the same flags): which
   files, up to which TXID. No plan (no replica, a damaged one, a store that
   does not answer) is left to Litestream's own restore, which says why in
   its own words, exactly as before.
2. Those files fetched several at once (stores.py) into a stage beside the
   output, laid out as a file replica (`ltx/<level>/<name>`), each one
   checked whole; a file compaction removed meanwhile means: plan again.
3. Litestream restores from the stage (`-txid` of the plan, the same
   integrity check); its LTX checksums check every file. The stage goes
   whatever happened, and so does `OUT.tmp` after a failed restore.

A fetch that fails (the store away, a session cut), a stage the disk cannot
hold besides the database, or a stage path a file:// URL cannot name falls
back to Litestream's own restore from the store, which then fails or
succeeds as before (with the time the fetch did not use).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import systemd
from .dbfiles import stage_dir
from .errors import Refused, StoreUnreachable
from .litestream import Litestream, json_in
from .output import say, warn
from .settings import Settings
from .stores import FileGone, Store, Wanted

# The stores whose files are fetched by the guard (a file replica is local).
KINDS = ("sftp", "s3")
MIB = 1 << 20
# The share of a restore's time the fetch may take: the rest is left for the
# local restore, or for Litestream's own restore when the fetch failed.
FETCH_SHARE = 0.6
# What a stage's path may hold to be named by a file:// URL as it is
# (Litestream does not unescape it).
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9._/+-]+")
# An LTX file's name: <min TXID>-<max TXID>.ltx, 16 hex digits each.
_LTX_NAME = re.compile(r"[0-9a-f]{16}-[0-9a-f]{16}\.ltx")


@dataclass(frozen=True)
class Plan:
    """Litestream's restore plan: the TXID it reaches (hex, as Litestream
    prints it) and its files as (level, name, size), in apply order."""

    max_txid: str
    files: tuple[tuple[int, str, int], ...]

    @property
    def size(self) -> int:
        return sum(size for _, _, size in self.files)

    @classmethod
    def of(cls, text: str) -> Plan:
        data = json_in(text)
        files = tuple((int(f["level"]), str(f["name"]), int(f["size"])) for f in data["files"])
        for _, name, _ in files:
            if not _LTX_NAME.fullmatch(name):
                raise ValueError(f"a file of the plan has a strange name: {name!r}")
        return cls(str(data["max_txid"]), files)


def wanted_in(plan: Plan, stage: Path) -> list[Wanted]:
    return [
        Wanted(level, name, size, stage / "ltx" / str(level) / f"{name}.part")
        for level, name, size in plan.files
    ]


def space_short(plan: Plan, directory: Path) -> str:
    """Why the disk cannot hold the stage and the database ("": it can).
    The database is at least as large as the plan's compressed files; when
    both do not fit, Litestream's own restore (no stage) may still."""
    free = shutil.disk_usage(directory).free
    need = 2 * plan.size
    if free >= need:
        return ""
    return (
        f"Not enough space in {directory} to stage the plan: its {len(plan.files)} files "
        f"are {plan.size / MIB:.0f} MiB, staged and restored they need at least "
        f"{need / MIB:.0f} MiB, {free / MIB:.0f} MiB are free"
    )


def fetched_bytes(wanted: list[Wanted]) -> int:
    """Bytes on disk so far (allocated blocks: ranged writes fill a sparse
    file out of order)."""
    total = 0
    for w in wanted:
        for path in (w.dest, w.dest.with_suffix("")):
            with contextlib.suppress(FileNotFoundError):
                total += min(path.stat().st_blocks * 512, w.size)
                break
    return total


def output_bytes(output: Path) -> int:
    """Bytes Litestream has written of the database so far (OUT.tmp, then
    OUT once it was renamed)."""
    for path in (output.with_name(output.name + ".tmp"), output):
        with contextlib.suppress(FileNotFoundError):
            return path.stat().st_size
    return 0


def database_size(plan: Plan, stage: Path) -> int:
    """The restored database's size: the header of the plan's last file
    (LTX: "LTX1", flags, page size, then the database's size in pages, all
    big-endian); 0 when it cannot be read."""
    level, name, _ = plan.files[-1]
    try:
        with open(stage / "ltx" / str(level) / name, "rb") as f:
            head = f.read(16)
    except OSError:
        return 0
    if len(head) < 16 or head[:4] != b"LTX1":
        return 0
    page_size, pages = struct.unpack(">II", head[8:16])
    return page_size * pages


@contextlib.contextmanager
def progress(
    phase: str,
    total: int,
    done: Callable[[], int],
    what: str,
    record: Path | None = None,
    every: float = 5.0,
    then: str = "",
):
    """While a step of a restore lasts (`phase`: "fetched" or "applied"): a
    journal line every `every` seconds (bytes done of `total`, rate, time
    left) and, for the start-up restore (`record`), the same in `record`
    (JSON, for `status`) and as the unit's status line in systemd. `then`:
    what follows once all is done (said instead of the time left)."""
    started = time.monotonic()
    stop = threading.Event()

    def report(say_it: bool) -> None:
        got = min(done(), total)
        rate = got / max(time.monotonic() - started, 1e-3)
        eta = (total - got) / rate if rate > 0 else None
        left = f", about {eta:.0f} s left" if eta is not None else ""
        if then and total and got >= total:
            left = f", {then}"
        line = (
            f"restoring: {phase} {got / MIB:.0f} / {total / MIB:.0f} MiB {what}, "
            f"{rate / MIB:.1f} MiB/s{left}"
        )
        if say_it:
            say(line)
        if record is not None:
            now = {
                "pid": os.getpid(),
                "phase": phase,
                "done": got,
                "total": total,
                "rate": round(rate),
                "eta_seconds": eta and round(eta),
            }
            with contextlib.suppress(OSError):
                tmp = record.with_name(record.name + ".tmp")
                tmp.write_text(json.dumps(now))
                os.replace(tmp, record)
            systemd.notify_status(line)

    def reports() -> None:
        while not stop.wait(every):
            report(True)

    report(False)
    thread = threading.Thread(target=reports, name="restore-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class Stager:
    """The fetch-then-restore-locally path of one replica (SFTP or S3)."""

    def __init__(self, settings: Settings, record: Path | None = None) -> None:
        self.settings = settings
        # Where a start-up restore keeps its progress while files are
        # fetched (`status`).
        self.record = record

    @staticmethod
    def of(settings: Settings, record: Path | None = None) -> Stager | None:
        kind = str(settings.replica.get("type", ""))
        return Stager(settings, record) if kind in KINDS else None

    def restore(
        self,
        litestream: Litestream,
        *,
        timeout: float,
        output: Path | None = None,
        target: tuple[str, ...] | list[str] = (),
        integrity_check: str = "",
        json_output: bool = False,
        if_db_not_exists: bool = False,
        report_progress: bool = False,
    ) -> subprocess.CompletedProcess:
        """What `Litestream.restore` answers, the files fetched by the guard.
        subprocess.TimeoutExpired past `timeout`, as Litestream's own. The
        fetch may use FETCH_SHARE of the time: the rest is the local
        restore's, or the fallback's. `report_progress`: keep the progress
        in the record `status` reads (the start-up restore)."""
        start = time.monotonic()
        deadline = start + timeout
        out_path = (Path(output) if output is not None else litestream.db).absolute()
        stage = stage_dir(out_path)

        # Where this restore keeps its progress for `status` (the start-up
        # restore's only), removed whatever happens.
        record = self.record if report_progress else None
        if record is not None and not record.parent.is_dir():
            record = None

        def own(why: str = "") -> subprocess.CompletedProcess:
            shutil.rmtree(stage, ignore_errors=True)
            if record is not None:
                record.unlink(missing_ok=True)  # no figures for Litestream's own
                systemd.notify_status("restoring: Litestream restores straight from the store")
            if why:
                warn(f"{why}: Litestream restores straight from the store (slower)")
            return litestream.restore_from_store(
                timeout=left(deadline),
                output=output,
                target=target,
                integrity_check=integrity_check,
                json_output=json_output,
                if_db_not_exists=if_db_not_exists,
            )

        if (if_db_not_exists and out_path.exists()) or not out_path.parent.is_dir():
            return own()
        if not _PLAIN_PATH.fullmatch(str(stage)):
            # Litestream reads a file:// URL without unescaping it.
            return own(f"The stage's path {stage} does not fit in a file:// URL")
        try:
            for _ in range(3):
                planned = litestream.restore_from_store(
                    dry_run=True, json_output=True, target=target, timeout=left(deadline)
                )
                if planned.returncode != 0:
                    return own()
                try:
                    plan = Plan.of(planned.stdout)
                except (Refused, ValueError, KeyError) as error:
                    return own(f"Litestream's restore plan could not be read ({error})")
                if not plan.files:
                    return own()
                shutil.rmtree(stage, ignore_errors=True)  # one a crash left
                short = space_short(plan, out_path.parent)
                if short:
                    return own(short)
                try:
                    self.fetch(litestream, plan, stage, start + FETCH_SHARE * timeout, record)
                except FileGone as error:
                    say(f"{error}: planning again")
                    continue
                except (StoreUnreachable, OSError) as error:
                    return own(f"Fetching the plan's files failed ({error})")
                try:
                    return self.restore_staged(
                        litestream,
                        plan,
                        stage,
                        out_path,
                        integrity_check,
                        json_output,
                        deadline,
                        record,
                    )
                finally:
                    shutil.rmtree(stage, ignore_errors=True)
            return own("The store's files kept changing under the plan")
        finally:
            if record is not None:
                record.unlink(missing_ok=True)

    def fetch(
        self,
        litestream: Litestream,
        plan: Plan,
        stage: Path,
        deadline: float,
        record: Path | None = None,
    ) -> None:
        wanted = wanted_in(plan, stage)
        for w in wanted:
            w.dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        store = Store.of(self.settings.replica, litestream.env(), self.settings.check_timeout)
        started = time.monotonic()
        what = f"of the plan's {len(wanted)} files"
        with progress("fetched", plan.size, lambda: fetched_bytes(wanted), what, record):
            store.fetch(wanted, deadline)
        for w in wanted:
            w.dest.rename(w.dest.with_suffix(""))
        seconds = time.monotonic() - started
        say(
            f"restoring: fetched the plan's {len(wanted)} files, {plan.size / MIB:.1f} MiB, "
            f"in {seconds:.1f} s"
        )

    def restore_staged(
        self,
        litestream: Litestream,
        plan: Plan,
        stage: Path,
        output: Path,
        integrity_check: str,
        json_output: bool,
        deadline: float,
        record: Path | None = None,
    ) -> subprocess.CompletedProcess:
        args = ["restore", *(["-json"] if json_output else []), "-txid", plan.max_txid]
        if integrity_check:
            args += ["-integrity-check", integrity_check]
        args += ["-o", str(output), f"file://{stage}"]
        out = None
        started = time.monotonic()
        size = database_size(plan, stage)
        watch = (
            progress(
                "applied",
                size,
                lambda: output_bytes(output),
                "of the database",
                record,
                then=f"integrity check ({integrity_check})" if integrity_check else "",
            )
            if size
            else contextlib.nullcontext()
        )
        try:
            with watch:
                out = litestream.run(*args, timeout=left(deadline))
        finally:
            if out is None or out.returncode != 0:
                output.with_name(output.name + ".tmp").unlink(missing_ok=True)
        if out.returncode == 0:
            say(f"restoring: restored from the stage in {time.monotonic() - started:.1f} s")
        return out


def left(deadline: float) -> float:
    """Seconds to the deadline (at least 1)."""
    return max(1.0, deadline - time.monotonic())
