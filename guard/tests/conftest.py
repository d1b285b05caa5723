"""A stand-in world for the guard: a fake `litestream` binary that answers
`status`, `ltx`, `restore` and `reset` the way Litestream 0.5 does (its JSON
shapes and exit codes were taken from the real binary), a fake `systemctl`,
the control socket stood in for. The units and the real stores are drilled
in Molecule; these pin down every branch quickly."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

import pytest

import litestream_control
from litestream_guard import systemd
from litestream_guard.errors import Refused
from litestream_guard.host import Host
from litestream_guard.lifecycle import start
from litestream_guard.settings import Settings

# The stand-in reads what to answer from files beside it.
FAKE = r"""#!/bin/sh
here=$(dirname "$0")
cmd=$1
case $cmd in
status)
    [ -e "$here/status_hangs" ] && sleep 5
    txid=$(cat "$here/local_txid")
    printf '[{"database": "%s", "status": "ok", "local_txid": "%s", "wal_size": "-"}]\n' \
        "$(cat "$here/db_path")" "$txid"
    ;;
ltx)
    [ -e "$here/unreachable" ] && { echo "Error: dial tcp: connection refused" >&2; exit 1; }
    # Once the file replica's LTX files were moved aside, the path lists none.
    if ls -d "$here/../replica/aside-"* >/dev/null 2>&1; then echo "[]"; exit 0; fi
    cat "$here/ltx.json"
    ;;
reset)
    echo "litestream reset" >> "$here/events"
    echo "-" > "$here/local_txid"
    ;;
restore)
    [ -e "$here/unreachable" ] && { echo "Error: dial tcp: connection refused" >&2; exit 1; }
    echo "litestream $*" >> "$here/events"
    [ -e "$here/restore_hangs" ] && sleep 5
    case "$*" in *-dry-run*)
        [ -e "$here/plan.json" ] || { echo "no matching backup files available" >&2; exit 1; }
        cat "$here/plan.json"; exit 0;;
    esac
    if [ -e "$here/restorable" ]; then
        for last; do :; done
        out=$last
        case "$*" in *" -o "*) out=$(echo "$*" | sed 's/.* -o \([^ ]*\) .*/\1/');; esac
        # From a stage (staging.py): what it holds, relative; a damaged file.
        case "$last" in file://*)
            (cd "${last#file://}" && find . -type f | sort) > "$here/staged"
            if [ -e "$here/stage_damaged" ]; then
                echo x > "$out.tmp"; echo "Error: ltx checksum mismatch" >&2; exit 1
            fi;;
        esac
        if [ -e "$here/restore_source" ]; then cp "$here/restore_source" "$out"
        else echo restored > "$out"; fi
        # 0.5.17 logs the integrity check on stdout, before the JSON.
        case "$*" in *-json*) echo 'time=... level=INFO msg="post-restore integrity check passed"'
            printf '{\n  "txid": "%s"\n}\n' "$(cat "$here/restore_txid")";; esac
    else
        echo 'level=INFO msg="no matching backups found"' >&2
    fi
    ;;
esac
"""

# systemctl: every call recorded; `is-active` says active unless the file
# `inactive` names the unit; `list-jobs` answers what the file `jobs` holds;
# `show -p TriggeredBy` what the file `triggered_by` holds.
SYSTEMCTL = r"""#!/bin/sh
here=$(dirname "$0")
echo "systemctl $*" >> "$here/events"
case $1 in
is-active)
    for unit; do :; done
    if [ -e "$here/inactive" ] && grep -qx "$unit" "$here/inactive"; then
        case "$2" in --quiet) ;; *) echo inactive;; esac; exit 3
    fi
    case "$2" in --quiet) ;; *) echo active;; esac
    ;;
list-jobs)
    [ -e "$here/jobs" ] && cat "$here/jobs"
    ;;
show)
    case "$*" in
    *TriggeredBy*) [ -e "$here/triggered_by" ] && cat "$here/triggered_by";;
    *) echo 4242;;
    esac
    ;;
esac
exit 0
"""

DESTINATION = "sftp://store:22/upload/host"
OTHER = "s3://store:8333/bucket/host"


def ltx(*max_txids: int, level: int = 0, start: int = 1) -> str:
    """Level-0 files ending at these TXIDs, each starting where the one
    before ended (a history that restores up to the last)."""
    return json.dumps(spans(*max_txids, level=level, start=start))


def spans(*max_txids: int, level: int = 0, start: int = 1) -> list[dict]:
    files = []
    for t in max_txids:
        files.append(
            {"level": level, "min_txid": f"{start:016x}", "max_txid": f"{t:016x}", "size": 1}
        )
        start = t + 1
    return files


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


class World:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.bin = tmp / "bin"
        self.bin.mkdir()
        fake = executable(self.bin / "litestream", FAKE)
        self.db = tmp / "data" / "counter.db"
        self.db.parent.mkdir()
        (self.bin / "db_path").write_text(str(self.db))
        self.state = tmp / "state"
        self.state.mkdir()
        self.settings = {
            "binary": str(fake),
            "config": str(tmp / "litestream.yml"),
            "env_file": str(tmp / "absent.env"),
            "db": str(self.db),
            "socket": str(tmp / "litestream.sock"),
            "state_dir": str(self.state),
            "user": "nobody",
            "unit": "litestream.service",
            "app_unit": "counter.service",
            "replica_id": DESTINATION,
            "replica": {"type": "file", "path": str(tmp / "replica")},
            "check_timeout": 5,
            "restore_timeout": 5,
            "stop_sync_timeout": 2,
            "integrity_check": "quick",
        }
        self.local(None)
        self.replica()

    def local(self, txid: int | None) -> None:
        (self.bin / "local_txid").write_text("-" if txid is None else f"{txid:016x}")

    def replica(self, *txids: int) -> None:
        (self.bin / "ltx.json").write_text(ltx(*txids))

    def files(self, files: list[dict]) -> None:
        (self.bin / "ltx.json").write_text(json.dumps(files))

    def here(self, txid: int, how: str = "stopped") -> None:
        """This host has been replicating to its destination, up to txid."""
        self.host().state.write_record(txid, how)

    def flag(self, name: str, on: bool = True) -> None:
        path = self.bin / name
        path.touch() if on else path.unlink(missing_ok=True)

    def host(self) -> Host:
        return Host(Settings.from_dict(self.settings))

    def record(self) -> dict | None:
        return self.host().state.read_record()

    def write_settings(self) -> Path:
        path = self.tmp / "guard.json"
        path.write_text(json.dumps(self.settings))
        return path

    def systemctl(self, monkeypatch) -> Path:
        fake = executable(self.bin / "systemctl", SYSTEMCTL)
        monkeypatch.setattr(systemd, "SYSTEMCTL", str(fake))
        return fake

    def events(self) -> list[str]:
        path = self.bin / "events"
        if not path.exists():
            return []
        return [" ".join(line.split()[:2]) for line in path.read_text().splitlines()]

    def event_lines(self) -> list[str]:
        path = self.bin / "events"
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def world(tmp_path, monkeypatch) -> World:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.delenv("LITESTREAM_ACCESS_KEY_ID", raising=False)
    return World(tmp_path)


def refused(world: World) -> Refused:
    with pytest.raises(Refused) as caught:
        start(world.host())
    return caught.value


def answer_sync(monkeypatch, answer: dict) -> dict:
    """Litestream's /sync answer on the control socket (the dict may be
    changed later by the test)."""
    monkeypatch.setattr(litestream_control.Control, "request", lambda *a, **k: dict(answer))
    return answer


@pytest.fixture
def operator(world, monkeypatch):
    """The world as root runs the operator commands: systemctl and the
    control socket stood in for, ownership changes recorded."""
    world.systemctl(monkeypatch)
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr("os.chown", lambda *a: None)
    # Litestream's /sync answer: its local TXID and the replica's.
    world.synced = answer_sync(monkeypatch, {"txid": 10, "replicated_txid": 0})
    world.flag("restorable")
    (world.bin / "restore_txid").write_text(f"{4:016x}")
    # A live database with its WAL and Litestream state, at TXID 9 like its replica.
    world.db.write_text("live")
    world.db.with_name("counter.db-wal").write_text("live wal")
    (world.db.parent / ".counter.db-litestream").mkdir()
    world.local(9)
    world.replica(1, 9)
    world.synced["replicated_txid"] = 10
    return world


def counter_db(path: Path, count: int) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE IF NOT EXISTS visits (id INTEGER PRIMARY KEY, count INTEGER)")
    conn.execute("INSERT OR REPLACE INTO visits VALUES (1, ?)", (count,))
    conn.commit()
    conn.close()
    return path


def asides(world) -> list[Path]:
    return sorted(world.db.parent.glob("counter.db.aside-*"))
