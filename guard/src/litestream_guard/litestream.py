"""Litestream, as it reports itself: the one way this package runs the
`litestream` binary (environment, timeouts), reads what it prints (`ltx
-json`, `status -json`, `restore -json`), and restores (`restore()`, which
every restore path uses)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from .errors import Refused, StoreUnreachable
from .settings import Settings

CREDENTIALS = ("LITESTREAM_ACCESS_KEY_ID", "LITESTREAM_SECRET_ACCESS_KEY")


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#"):
            env[name.strip()] = value.strip().strip("'\"")
    return env


def said(out: subprocess.CompletedProcess) -> str:
    """What a command said (stderr, then stdout), on one line, its end."""
    return " ".join((out.stderr + out.stdout).split())[-600:] or f"exit {out.returncode}"


def json_in(text: str) -> dict:
    """The JSON document Litestream prints with -json. Seen with 0.5.17: the
    restore's integrity-check log line comes first, on stdout."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("{"):
            return json.loads("\n".join(lines[i:]))
    raise Refused(f"no JSON in Litestream's output: {text[-300:]!r}")


def max_txid(files: list[dict]) -> int:
    """The newest TXID of these LTX files (0 when there are none)."""
    return max((int(f["max_txid"], 16) for f in files), default=0)


def restorable_to(files: list[dict]) -> int:
    """The highest TXID a restore of these LTX files reaches (0: none), read
    the way Litestream's restore plan is made (replica.go CalcRestorePlan):
    the newest snapshot (level 9) if any, then any file of levels 0-8 that
    starts at or before the next TXID, the one reaching furthest first."""
    spans = [(int(f["level"]), int(f["min_txid"], 16), int(f["max_txid"], 16)) for f in files]
    reached = max((hi for level, _, hi in spans if level == 9), default=0)
    while True:
        further = [hi for level, lo, hi in spans if level < 9 and lo <= reached + 1 < hi + 1]
        if not further or max(further) <= reached:
            break
        reached = max(further)
    # For the newest state, a file beyond a gap makes the plan fail.
    if any(level < 9 and lo > reached + 1 for level, lo, _ in spans):
        return 0
    return reached


class Litestream:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = settings.db
        # Another destination to restore from (restore-plan, -copy, -to with
        # --source-config): its Litestream configuration and environment file.
        self.source: tuple[str, str] | None = None
        # Fetches a plan's files itself, then restores locally (staging.py);
        # None: every restore is Litestream's own from the store.
        self.stager = None

    def env(self, source: bool = False) -> dict[str, str]:
        env = dict(os.environ)
        env_file = self.settings.env_file
        # The unit gets the replica credentials from systemd; an operator
        # running this as root gets them from the same file.
        if CREDENTIALS[0] not in env and os.access(env_file, os.R_OK):
            env |= read_env_file(env_file)
        if source and self.source:
            # Restoring from another destination: its own credentials only.
            for name in CREDENTIALS:
                env.pop(name, None)
            if self.source[1] and os.access(self.source[1], os.R_OK):
                env |= read_env_file(Path(self.source[1]))
        return env

    def run(self, *args: str, timeout: float, source: bool = False) -> subprocess.CompletedProcess:
        """`litestream ARGS`; subprocess.TimeoutExpired when it runs longer."""
        return subprocess.run(
            [self.settings.binary, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(source),
            check=False,
        )

    def local_txid(self) -> int | None:
        """The database's position as Litestream's local state records it,
        or None when there is no local state (never replicated here)."""
        try:
            out = self.run(
                "status", "-json", "-config", self.settings.config, str(self.db), timeout=30
            )
        except subprocess.TimeoutExpired:
            raise Refused("litestream status did not answer within 30 s: try again later") from None
        if out.returncode != 0:
            raise Refused(f"litestream status failed: {out.stderr.strip()}")
        for entry in json.loads(out.stdout or "[]"):
            if entry.get("database") == str(self.db):
                raw = entry.get("local_txid", "-")
                return None if raw in ("", "-") else int(raw, 16)
        return None

    def replica_files(self) -> list[dict]:
        """Every LTX file of the replica, all levels; [] when the path holds
        none. Raises StoreUnreachable when the store does not answer."""
        timeout = self.settings.check_timeout
        try:
            out = self.run(
                "ltx",
                "-json",
                "-level",
                "all",
                "-config",
                self.settings.config,
                str(self.db),
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise StoreUnreachable(f"no answer from the replica store within {timeout} s") from None
        if out.returncode != 0:
            text = " ".join((out.stderr + out.stdout).split())[-400:]
            raise StoreUnreachable(text or f"litestream ltx exited {out.returncode}")
        return json.loads(out.stdout or "[]")

    def read_replica(self, then: str = "") -> tuple[list[dict], int]:
        """The replica's LTX files and its newest TXID (0 when it holds
        none). A store that does not answer is refused: "The replica store
        cannot be read (why)" followed by `then`."""
        try:
            files = self.replica_files()
        except StoreUnreachable as error:
            raise Refused(f"The replica store cannot be read ({error}){then}") from None
        return files, max_txid(files)

    def reset(self) -> None:
        """Litestream's own `reset`: its local LTX state goes (derived from the
        database, which is untouched); its next sync snapshots the database."""
        out = self.run("reset", "-config", self.settings.config, str(self.db), timeout=60)
        if out.returncode != 0:
            raise Refused(f"litestream reset failed: {said(out)}")

    def restore(
        self,
        *,
        dry_run: bool = False,
        source: bool = False,
        report_progress: bool = False,
        **kwargs,
    ):
        """`restore_from_store`'s answer; the plan's files fetched by the
        stager first when there is one (not for a dry run, nor for another
        destination, whose store the guard knows only as Litestream's YAML).
        `report_progress`: the fetch's progress is kept for `status`."""
        if self.stager is None or dry_run or (source and self.source):
            return self.restore_from_store(dry_run=dry_run, source=source, **kwargs)
        return self.stager.restore(self, report_progress=report_progress, **kwargs)

    def restore_from_store(
        self,
        *,
        timeout: float,
        output: Path | None = None,
        target: tuple[str, ...] | list[str] = (),
        integrity_check: str = "",
        dry_run: bool = False,
        json_output: bool = False,
        if_db_not_exists: bool = False,
        source: bool = False,
    ) -> subprocess.CompletedProcess:
        """Litestream's own `litestream restore` of the database's replica (or, with `source`,
        of the destination named by --source-config): into `output` (the
        database itself when None), up to the `target` flags (-txid or
        -timestamp; the newest state when none). subprocess.TimeoutExpired
        when it runs longer than `timeout`: each caller says what that means."""
        config = self.source[0] if source and self.source else self.settings.config
        args = ["restore"]
        if json_output:
            args.append("-json")
        args += ["-config", config]
        if dry_run:
            args.append("-dry-run")
        if if_db_not_exists:
            args.append("-if-db-not-exists")
        if integrity_check:
            args += ["-integrity-check", integrity_check]
        if output is not None:
            args += ["-o", str(output)]
        args += [*target, str(self.db)]
        return self.run(*args, timeout=timeout, source=source)

    def plan_reaches(self) -> int | None:
        """The TXID Litestream's own restore plan for the newest state
        reaches; None when it finds no plan (and the store answers)."""
        timeout = self.settings.check_timeout + 20
        try:
            out = self.restore(json_output=True, dry_run=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise StoreUnreachable(f"no restore plan within {timeout} s") from None
        if out.returncode == 0:
            try:
                return int(json_in(out.stdout)["max_txid"], 16)
            except (Refused, ValueError, KeyError):
                pass
        # No plan: an empty or damaged replica, or a store that does not
        # answer (the listing tells them apart).
        self.replica_files()
        return None
