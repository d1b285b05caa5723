"""The guard's settings: /etc/litestream/guard.json (written by Ansible,
roles/litestream/vars/main.yml `__litestream_guard_config`), read once into
typed objects. Every default is here; a key the file does not know is
ignored, a missing required one is an error (a sentence, exit 1)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import EXIT_RETRY, EXIT_USAGE, Refused

SETTINGS = Path(os.environ.get("LITESTREAM_GUARD_SETTINGS", "/etc/litestream/guard.json"))
# Beside the first database's settings: its staged ones (a deploy's), not a database.
STAGED = "staged"

Seconds = int | float


@dataclass(frozen=True)
class ReplicaCheck:
    """The replica check (litestream-replica-check.timer)."""

    # The check's unit, started at once when a new history waits ("": none).
    unit: str = ""
    # How long a published check stays good for the app's readiness.
    valid_for: int = 120
    # Checks in a row that find the replica not restorable before a new
    # history begins.
    failures_before_new_history: int = 2


@dataclass(frozen=True)
class Drill:
    """The scheduled restore drill (litestream-restore-drill.service)."""

    dir: Path
    result: Path
    # A query giving a number that never decreases ("": no comparison).
    probe: str = ""
    timeout: Seconds = 900
    heartbeat_url: str = ""


@dataclass(frozen=True)
class Settings:
    binary: str
    config: str
    env_file: Path
    db: Path
    socket: str
    state_dir: Path
    # Litestream's account: files the guard makes as root go to it.
    user: str
    unit: str
    # The app's unit ("" when none is bound).
    app_unit: str
    # Which destination a recorded position belongs to (the replica's URL).
    replica_id: str
    # The replica's settings without its secrets (the store's move-aside).
    replica: dict[str, Any]
    check_timeout: Seconds
    restore_timeout: Seconds
    stop_sync_timeout: Seconds
    integrity_check: str
    # The group that shares the database directory ("": the user's own).
    group: str = ""
    # The longest wait between starts in a loop (back-off), in seconds.
    restart_max: float = 5.0
    trust_record_when_unreachable: bool = True
    replica_check: ReplicaCheck = field(default_factory=ReplicaCheck)
    drill: Drill | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        missing = sorted(
            f.name
            for f in dataclasses.fields(cls)
            if f.name not in values
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        )
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        for name in ("env_file", "db", "state_dir"):
            values[name] = Path(values[name])
        if "restart_max" in values:
            values["restart_max"] = float(values["restart_max"])
        check = data.get("replica_check") or {}
        values["replica_check"] = ReplicaCheck(
            unit=check.get("unit") or "",
            valid_for=int(check.get("valid_for", 120)),
            failures_before_new_history=int(check.get("failures_before_new_history", 2)),
        )
        drill = data.get("drill")
        if drill:
            values["drill"] = Drill(
                dir=Path(drill["dir"]),
                result=Path(drill["result"]),
                probe=drill.get("probe") or "",
                timeout=drill.get("timeout", 900),
                heartbeat_url=drill.get("heartbeat_url") or "",
            )
        else:
            values["drill"] = None
        return cls(**values)


def databases(first: Path | None = None) -> list[str]:
    """The names of the host's other databases (litestream_databases): each
    has its settings in a directory of its name beside the first one's."""
    first = first or SETTINGS
    found = first.parent.glob("*/guard.json")
    return sorted(p.parent.name for p in found if p.parent.name != STAGED)


def every_database(first: Path | None = None) -> list[tuple[str, Path]]:
    """(name, settings file) of every database of the host: its first ("")
    and each of litestream_databases."""
    first = first or SETTINGS
    return [("", first)] + [(name, first.parent / name / "guard.json") for name in databases(first)]


def path_of(database: str | None, first: Path | None = None) -> Path:
    """The settings file of one database: the host's first (None), or one of
    litestream_databases by its name."""
    first = first or SETTINGS
    if database is None:
        return first
    if not re.fullmatch(r"[a-z0-9_]+", database) or database == STAGED:
        raise Refused(
            f"--database {database!r}: a name of litestream_databases ([a-z0-9_]+)", EXIT_USAGE
        )
    path = first.parent / database / "guard.json"
    if not path.exists():
        known = ", ".join(databases(first)) or "none"
        raise Refused(
            f"No database {database!r} on this host ({path} is not there); the host's other "
            f"databases: {known} (without --database: its first, {first})",
            EXIT_USAGE,
        )
    return path


def load(path: Path | None = None) -> Settings:
    """The settings file, or a sentence saying why it cannot be used."""
    path = path or SETTINGS
    try:
        return Settings.from_dict(json.loads(path.read_text()))
    except OSError as error:
        raise Refused(f"Cannot read the guard's settings {path}: {error}", EXIT_RETRY) from None
    except (ValueError, KeyError, TypeError) as error:
        raise Refused(f"The guard's settings {path} cannot be used: {error}", EXIT_RETRY) from None
