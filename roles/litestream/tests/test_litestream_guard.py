"""The start-up guard's decisions, against a stand-in `litestream` binary that
answers `status`, `ltx` and `restore` the way Litestream 0.5 does (its JSON
shapes and exit codes were taken from the real binary). The units and the real
stores are drilled in Molecule; this pins down every branch quickly."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

GUARD = Path(__file__).resolve().parents[1] / "files" / "litestream-guard"


def _load_guard():
    loader = importlib.machinery.SourceFileLoader("litestream_guard", str(GUARD))
    spec = importlib.util.spec_from_loader("litestream_guard", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


guard_module = _load_guard()

# The stand-in reads what to answer from files beside it.
FAKE = r"""#!/bin/sh
here=$(dirname "$0")
cmd=$1
case $cmd in
status)
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
    case "$*" in *-dry-run*)
        [ -e "$here/plan.json" ] || { echo "no matching backup files available" >&2; exit 1; }
        cat "$here/plan.json"; exit 0;;
    esac
    if [ -e "$here/restorable" ]; then
        for last; do :; done
        out=$last
        case "$*" in *" -o "*) out=$(echo "$*" | sed 's/.* -o \([^ ]*\) .*/\1/');; esac
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


class World:
    def __init__(self, tmp: Path) -> None:
        self.bin = tmp / "bin"
        self.bin.mkdir()
        fake = self.bin / "litestream"
        fake.write_text(FAKE)
        fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
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
            "replica_id": "sftp://store:22/upload/host",
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
        self.guard().write_record(txid, how)

    def flag(self, name: str, on: bool = True) -> None:
        path = self.bin / name
        path.touch() if on else path.unlink(missing_ok=True)

    def guard(self):
        return guard_module.Guard(self.settings)

    def record(self) -> dict | None:
        return self.guard().read_record()


@pytest.fixture
def world(tmp_path, monkeypatch) -> World:
    monkeypatch.setattr(guard_module.os, "geteuid", lambda: 1000)
    monkeypatch.delenv("LITESTREAM_ACCESS_KEY_ID", raising=False)
    return World(tmp_path)


def refused(world: World) -> guard_module.Refused:
    with pytest.raises(guard_module.Refused) as caught:
        world.guard().start()
    return caught.value


def test_missing_database_and_empty_replica_start_new(world, capsys):
    world.guard().start()
    assert "holds nothing yet" in capsys.readouterr().out
    assert world.record()["txid"] == 0


def test_missing_database_is_restored(world, capsys):
    world.replica(1, 7)
    world.flag("restorable")
    (world.db.parent / ".counter.db-litestream").mkdir()
    world.db.with_name("counter.db-wal").write_text("stale")
    world.guard().start()
    assert world.db.read_text() == "restored\n"
    assert not world.db.with_name("counter.db-wal").exists(), "a stale WAL is removed"
    assert world.record() | {"at": None} == {
        "replica": "sftp://store:22/upload/host",
        "txid": 7,
        "how": "restored",
        "at": None,
    }
    assert "integrity check: quick" in capsys.readouterr().out


def test_damaged_replica_is_not_taken_for_an_empty_one(world):
    world.replica(2, 3)  # files, but restore finds no backup
    error = refused(world)
    assert error.code == guard_module.EXIT_RETRY
    assert "no restorable backup" in str(error)
    assert not world.db.exists()


def test_unreachable_store_with_a_missing_database_fails_closed(world):
    world.flag("unreachable")
    error = refused(world)
    assert "cannot be read" in str(error) and "not starting on an empty database" in str(error)


@pytest.mark.parametrize(("local", "replica"), [(5, 5), (9, 5)], ids=["equal", "ahead"])
def test_database_not_behind_its_replica_starts(world, local, replica):
    world.db.write_text("db")
    world.local(local)
    world.replica(1, replica)
    world.here(replica)
    world.guard().start()
    assert world.record()["txid"] == replica


def test_database_behind_its_replica_is_refused(world):
    world.db.write_text("db")
    world.local(3)
    world.replica(1, 5)
    world.here(5)
    error = refused(world)
    assert error.code == guard_module.EXIT_REFUSED
    assert "is at TXID 3 but its replica is at TXID 5" in str(error)
    assert "restore-from-replica" in str(error) and "adopt-local" in str(error)


def test_existing_database_and_empty_replica_path_start(world):
    world.db.write_text("db")
    world.local(4)
    world.guard().start()


def test_existing_database_without_local_state_is_refused_unless_just_restored(world):
    world.db.write_text("db")
    world.replica(1, 5)
    assert refused(world).code == guard_module.EXIT_REFUSED
    world.guard().write_record(5, "restored")
    world.guard().start()


def test_unreachable_store_uses_this_hosts_record(world):
    world.db.write_text("db")
    world.local(6)
    world.flag("unreachable")
    assert "last known replica position: unknown" in str(refused(world))
    world.guard().write_record(6, "stopped")
    world.guard().start()
    world.guard().write_record(8, "stopped")
    assert "TXID 6" in str(refused(world)), "a file behind the last known position"


def test_unreachable_store_without_trusting_the_record_waits(world):
    world.db.write_text("db")
    world.local(6)
    world.flag("unreachable")
    world.guard().write_record(6, "stopped")
    world.settings["trust_record_when_unreachable"] = False
    assert "not trusted" in str(refused(world))


def test_a_record_of_another_replica_is_ignored(world):
    world.guard().write_record(1, "stopped")
    world.settings["replica_id"] = "s3://bucket/other"
    assert world.record() is None


def test_adopting_is_allowed_for_the_replica_position_it_names_until_passed(world):
    world.db.write_text("db")
    world.local(3)
    world.replica(1, 5)
    adopt = world.state / "adopt.json"
    adopt.write_text(json.dumps({"replica": "sftp://store:22/upload/host", "txid": 4}))
    assert refused(world).code == guard_module.EXIT_REFUSED, "an adopt for another position"
    adopt.write_text(
        json.dumps({"replica": "sftp://store:22/upload/host", "txid": 5, "saved_as": "/x.db"})
    )
    world.guard().start()
    world.guard().start()  # Litestream died before its first sync: allowed again
    assert adopt.exists(), "kept until the replica is past TXID 5"
    world.replica(1, 5, 6)
    world.here(6)
    world.local(6)
    world.guard().start()
    assert not adopt.exists(), "the replica went past it: removed"
    world.local(3)
    assert refused(world).code == guard_module.EXIT_REFUSED


def test_settings_file_is_what_main_reads(world, monkeypatch, tmp_path):
    settings = tmp_path / "guard.json"
    settings.write_text(json.dumps(world.settings))
    monkeypatch.setattr(guard_module, "SETTINGS", settings)
    world.db.write_text("db")
    world.local(3)
    world.replica(5)
    assert guard_module.main(["litestream-guard", "start"]) == guard_module.EXIT_REFUSED
    assert guard_module.main(["litestream-guard", "nonsense"]) == 2
    assert os.access(GUARD, os.X_OK)


def test_a_crash_is_restarted_at_once_and_a_loop_backs_off(world, monkeypatch):
    clock = {"now": 1_000_000.0}
    waits: list[float] = []
    monkeypatch.setattr(guard_module.time, "time", lambda: clock["now"])
    monkeypatch.setattr(guard_module.time, "sleep", lambda s: waits.append(s))
    world.settings["restart_max"] = 1
    guard = world.guard()
    guard.back_off()  # the first start
    for _ in range(5):  # starts that come one after the other
        clock["now"] += 2
        guard.back_off()
    assert waits == [0.0, 0.2, 0.4, 0.8, 1.0, 1.0]
    clock["now"] += guard_module.QUICK_RESTART + 1  # after a good run: at once again
    guard.back_off()
    assert waits[-1] == 0.0


def test_an_unreadable_start_record_means_no_wait(world, monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(guard_module.time, "sleep", lambda s: waits.append(s))
    (world.state / "starts.json").write_text("{not json")
    world.guard().back_off()
    assert waits == [0.0]


# -- point-in-time restore and clone -------------------------------------------

SYSTEMCTL = r"""#!/bin/sh
echo "systemctl $*" >> "$(dirname "$0")/events"
case $1 in is-active) echo active;; esac
"""


@pytest.fixture
def operator(world, monkeypatch):
    """The world as root runs the operator commands: systemctl and the
    control socket stood in for, ownership changes recorded."""
    fake = world.bin / "systemctl"
    fake.write_text(SYSTEMCTL)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(guard_module, "SYSTEMCTL", str(fake))
    monkeypatch.setattr(guard_module.os, "geteuid", lambda: 0)
    monkeypatch.setattr(guard_module.os, "chown", lambda *a: None)
    # Litestream's /sync answer: its local TXID and the replica's.
    synced = {"txid": 10, "replicated_txid": 0}
    monkeypatch.setattr(guard_module.Guard, "socket_request", lambda *a, **k: dict(synced))
    world.synced = synced
    world.flag("restorable")
    (world.bin / "restore_txid").write_text(f"{4:016x}")
    # A live database with its WAL and Litestream state, at TXID 9 like its replica.
    world.db.write_text("live")
    world.db.with_name("counter.db-wal").write_text("live wal")
    (world.db.parent / ".counter.db-litestream").mkdir()
    world.local(9)
    world.replica(1, 9)
    synced["replicated_txid"] = 10
    return world


def events(world) -> list[str]:
    path = world.bin / "events"
    return [line.split()[0] + " " + line.split()[1] for line in path.read_text().splitlines()]


def target(**kw):
    return guard_module.Target(**kw)


@pytest.mark.parametrize(
    ("kw", "problem"),
    [
        ({}, "exactly one"),
        ({"latest": True, "txid": "2a"}, "exactly one"),
        ({"timestamp": "2026-11-30 17:00:00"}, "not RFC 3339"),
        ({"timestamp": "2026-02-30T17:00:00Z"}, "day is out of range"),
        ({"timestamp": "2999-01-01T00:00:00Z"}, "in the future"),
        ({"txid": "xyz"}, "not a transaction ID"),
        ({"txid": "0"}, "not a transaction ID"),
        ({"txid": "1" * 17}, "not a transaction ID"),
    ],
)
def test_a_restore_target_is_checked(kw, problem):
    with pytest.raises(guard_module.Refused) as caught:
        target(**kw)
    assert problem in str(caught.value) and caught.value.code == 2


def test_a_restore_target_in_litestreams_words():
    assert target(txid="0x2A").flags() == ["-txid", "000000000000002a"]
    assert target(timestamp="2026-11-30T17:00:00.5+01:00").flags() == [
        "-timestamp",
        "2026-11-30T17:00:00.5+01:00",
    ]
    assert target(latest=True).flags() == []


def test_the_plan_reads_only(operator):
    (operator.bin / "plan.json").write_text(
        json.dumps(
            {
                "max_txid": f"{4:016x}",
                "files": [{"level": 9, "name": "a.ltx", "size": 9, "timestamp": "t", "x": 1}],
            }
        )
    )
    plan = operator.guard().restore_plan(target(txid="4"))
    assert plan["restores_to_txid"] == 4 and plan["replica_txid"] == 9 and plan["local_txid"] == 9
    assert plan["files"] == [{"level": 9, "name": "a.ltx", "size": 9, "timestamp": "t"}]
    assert events(operator) == ["litestream restore"], "nothing but the dry run"
    (operator.bin / "plan.json").unlink()
    with pytest.raises(guard_module.Refused, match="No restore to TXID 5"):
        operator.guard().restore_plan(target(txid="5"))


def test_a_copy_touches_nothing_else(operator, tmp_path):
    out = tmp_path / "copy.db"
    result = operator.guard().restore_copy(target(txid="4"), out, 10)
    assert out.read_text() == "restored\n" and result["txid"] == 4
    assert "-integrity-check full" in (operator.bin / "events").read_text()
    assert not any(e.startswith("systemctl") for e in events(operator))
    assert operator.db.read_text() == "live"
    with pytest.raises(guard_module.Refused, match="not overwriting"):
        operator.guard().restore_copy(target(txid="4"), out, 10)


def asides(world) -> list[Path]:
    return sorted(world.db.parent.glob("counter.db.aside-*"))


def test_restore_to_a_point_keeps_the_live_file_and_adopts(operator):
    result = operator.guard().restore_to(target(timestamp="2026-11-30T17:00:00Z"), None, 10)
    assert events(operator)[:2] == ["litestream restore", "systemctl stop"], (
        "restored, then stopped"
    )
    assert operator.db.read_text() == "restored\n"
    (aside,) = asides(operator)
    assert (aside / "counter.db").read_text() == "live"
    assert (aside / "counter.db-wal").exists() and (aside / ".counter.db-litestream").is_dir()
    assert not operator.db.with_name("counter.db-wal").exists()
    assert [p.name for p in operator.db.parent.iterdir() if ".restore-" in p.name] == []
    assert result | {"kept_aside": None} == {
        "db": str(operator.db),
        "restored": "the last transaction before 2026-11-30T17:00:00Z",
        "restored_txid": 4,
        "replica_txid_before": 9,
        "replica_txid_after": 10,
        "kept_aside": None,
    }
    adopt = json.loads((operator.state / "adopt.json").read_text())
    assert adopt["txid"] == 9 and adopt["saved_as"] == str(aside)
    # The start-up guard lets the restored file (no Litestream state yet) go
    # on, until the replica is past TXID 9.
    operator.local(None)
    operator.guard().start()
    operator.replica(1, 9, 10)
    assert refused(operator).code == guard_module.EXIT_REFUSED


def test_restore_to_latest_restores_once_stopped(operator):
    operator.guard().restore_to(target(latest=True), None, 10)
    assert events(operator)[:2] == ["systemctl stop", "litestream restore"]


def test_restore_to_refuses_when_the_replica_lacks_local_writes(operator):
    operator.local(12)  # the stop's final sync did not reach the store
    with pytest.raises(guard_module.Refused, match="does not hold the last local writes"):
        operator.guard().restore_to(target(txid="4"), None, 10)
    assert operator.db.read_text() == "live" and asides(operator) == []
    assert events(operator)[-1] == "systemctl is-active", "the units were started again"
    assert "systemctl start" in events(operator)
    assert [p.name for p in operator.db.parent.iterdir() if ".restore-" in p.name] == []


def test_restore_to_an_unknown_point_stops_nothing(operator):
    operator.flag("restorable", on=False)
    with pytest.raises(guard_module.Refused, match="failed"):
        operator.guard().restore_to(target(txid="40"), None, 10)
    assert not any(e.startswith("systemctl") for e in events(operator))
    assert operator.db.read_text() == "live"


def test_restore_to_waits_for_the_replica_to_go_on(operator, monkeypatch):
    operator.synced["replicated_txid"] = 9
    operator.settings["stop_sync_timeout"] = -29.5
    with pytest.raises(guard_module.Refused, match="has not gone past TXID 9"):
        operator.guard().restore_to(target(txid="4"), None, 10)


def test_restore_to_a_clones_file(operator, tmp_path):
    clone = counter_db(tmp_path / "clone.db", 42)
    result = operator.guard().restore_to(None, clone, 10)
    assert operator.db.read_bytes() == clone.read_bytes()
    assert result["restored"] == f"the database file {clone}" and result["replica_txid_after"] == 10
    assert not any(e.startswith("litestream") for e in events(operator)), (
        "no restore from its replica"
    )


def test_restore_to_refuses_a_damaged_file_before_stopping(operator, tmp_path):
    clone = counter_db(tmp_path / "clone.db", 42)
    data = bytearray(clone.read_bytes())
    data[4096:8192] = b"\x0d\xff\xff" * 1365 + b"\xff"  # the table's page, garbled
    clone.write_bytes(bytes(data))
    with pytest.raises(guard_module.Refused, match="integrity check"):
        operator.guard().restore_to(None, clone, 10)
    (tmp_path / "text").write_text("not a database")
    with pytest.raises(guard_module.Refused, match="not a SQLite database"):
        operator.guard().restore_to(None, tmp_path / "text", 10)
    assert not (operator.bin / "events").exists(), "nothing stopped"
    assert operator.db.read_text() == "live"


@pytest.mark.parametrize(
    "args",
    [
        ["restore-to", "--timestamp", "2026-11-30T17:00:00Z", "--txid", "2"],
        ["restore-to", "--latest", "--from-file", "/x.db"],
        ["restore-copy", "--latest"],
        ["restore-plan", "--txid"],
    ],
)
def test_restore_commands_refuse_bad_arguments(world, monkeypatch, tmp_path, args):
    settings = tmp_path / "guard.json"
    settings.write_text(json.dumps(world.settings))
    monkeypatch.setattr(guard_module, "SETTINGS", settings)
    assert guard_module.main(["litestream-guard", *args]) == 2


def test_json_output_is_the_result_alone(operator, monkeypatch, tmp_path, capsys):
    settings = tmp_path / "guard.json"
    settings.write_text(json.dumps(operator.settings))
    monkeypatch.setattr(guard_module, "SETTINGS", settings)
    assert guard_module.main(["litestream-guard", "restore-to", "--json", "--txid", "4"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["replica_txid_after"] == 10
    assert "Starting counter.service" in err and "kept in" in err


# -- the scheduled restore drill -------------------------------------------


def counter_db(path: Path, count: int) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE IF NOT EXISTS visits (id INTEGER PRIMARY KEY, count INTEGER)")
    conn.execute("INSERT OR REPLACE INTO visits VALUES (1, ?)", (count,))
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def drill(world, monkeypatch, tmp_path):
    workdir = tmp_path / "drill"
    workdir.mkdir()
    world.settings["drill"] = {
        "dir": str(workdir),
        "result": str(workdir / "result.json"),
        "probe": "SELECT count FROM visits WHERE id = 1",
        "timeout": 5,
        "heartbeat_url": "",
    }
    counter_db(world.db, 5)
    world.replica(1, 7)
    world.flag("restorable")
    counter_db(world.bin / "restore_source", 5)
    position = {"txid": 7, "replicated_txid": 7}
    monkeypatch.setattr(
        guard_module.Guard, "socket_request", lambda self, *args, **kwargs: dict(position)
    )
    world.position = position
    return workdir


def drill_result(world, workdir: Path, passes: bool) -> dict:
    if passes:
        world.guard().restore_drill()
    else:
        with pytest.raises(guard_module.Refused):
            world.guard().restore_drill()
    result = json.loads((workdir / "result.json").read_text())
    assert result["ok"] is passes
    assert sorted(p.name for p in workdir.iterdir()) == ["result.json"], "scratch removed"
    return result


def test_a_restore_drill_that_restores_what_the_live_database_holds_passes(world, drill):
    result = drill_result(world, drill, passes=True)
    assert result["replica_txid"] == 7
    assert result["restored_count"] == 5 and result["live_count"] == 5
    assert result["error"] == "" and result["duration_seconds"] >= 0
    assert oct(os.stat(drill / "result.json").st_mode & 0o777) == "0o640"


def test_a_replica_that_does_not_restore_fails_the_drill(world, drill):
    world.flag("restorable", False)
    assert "did not restore" in drill_result(world, drill, passes=False)["error"]


def test_a_replica_behind_what_was_live_fails_the_drill(world, drill):
    counter_db(world.bin / "restore_source", 3)
    error = drill_result(world, drill, passes=False)["error"]
    assert "says 3 where the live database said 5" in error


def test_writes_the_replica_has_not_confirmed_fail_the_drill(world, drill):
    world.position.update(txid=9, replicated_txid=8)
    assert "replica holds TXID 8" in drill_result(world, drill, passes=False)["error"]


def test_a_damaged_restored_file_fails_the_drill(world, drill):
    (world.bin / "restore_source").write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)
    assert drill_result(world, drill, passes=False)["error"]


def test_an_unreachable_store_fails_the_drill(world, drill):
    world.flag("unreachable")
    assert drill_result(world, drill, passes=False)["error"]


# -- destinations: switching stores, a wiped replica, a reused path -------------

OTHER = "s3://store:8333/bucket/host"


def switched(world, local: int = 40) -> None:
    """The host replicated to its old destination up to TXID 40 and its
    replica settings now name another one."""
    world.db.write_text("db")
    world.local(local)
    world.here(40)
    world.settings["replica_id"] = OTHER


def history(world) -> dict:
    return json.loads((world.state / "history.json").read_text())


def published(world) -> dict:
    return json.loads((world.state / "replica.json").read_text())


def test_restorable_to_reads_every_level_like_litestreams_plan():
    restorable_to = guard_module.restorable_to
    assert restorable_to([]) == 0
    assert restorable_to(spans(3, 7)) == 7
    assert restorable_to(spans(9, level=9) + spans(12, start=10)) == 12, "snapshot, then L0"
    assert restorable_to(spans(20, level=1) + spans(5, 25)) == 25, "overlapping levels chain"
    assert restorable_to(spans(30, start=21)) == 0, "no snapshot, no start at TXID 1"
    assert restorable_to(spans(5) + spans(30, start=21)) == 0, "a gap: no plan for the newest"


def test_a_switch_to_an_empty_destination_begins_a_new_history(world, capsys):
    switched(world)
    world.guard().start()
    assert "litestream reset" in (world.bin / "events").read_text()
    assert world.record()["how"] == "new history" and world.record()["txid"] == 0
    assert history(world)["restarts"] == 1 and history(world)["pending"]["after_txid"] == 0
    assert published(world)["new_history_pending"] is True
    err = capsys.readouterr().err
    assert "REPLICA HISTORY RESTARTED" in err and "holds no LTX file" in err
    left = world.guard().destinations()["sftp://store:22/upload/host"]
    assert left["txid"] == 40 and left["local_txid"] == 40


def test_a_destination_holding_another_history_is_refused_with_two_ways_out(world):
    switched(world)
    world.replica(10, 70)
    error = refused(world)
    assert error.code == guard_module.EXIT_REFUSED
    assert "holds another history" in str(error) and "no record" in str(error)
    assert "empty path" in str(error) and "litestream-guard takeover" in str(error)
    assert not (world.bin / "events").exists(), "nothing reset, nothing moved"


def test_a_takeover_moves_the_foreign_files_aside_and_begins_anew(world):
    switched(world)
    world.replica(10, 70)
    ltx_dir = Path(world.settings["replica"]["path"]) / "ltx" / "0"
    ltx_dir.mkdir(parents=True)
    (ltx_dir / "0000000000000001-000000000000000a.ltx").write_text("foreign")
    (world.state / "new-history.json").write_text(
        json.dumps({"replica": OTHER, "why": "taken over by the operator (takeover)"})
    )
    world.guard().start()
    (aside,) = Path(world.settings["replica"]["path"]).glob("aside-*")
    assert (aside / "ltx" / "0" / "0000000000000001-000000000000000a.ltx").read_text() == "foreign"
    assert not (world.state / "new-history.json").exists()
    assert history(world)["last"]["aside"] == str(aside)
    assert world.record()["how"] == "new history"


def test_back_on_this_hosts_own_older_history_it_goes_on_there(world, capsys):
    switched(world)
    world.guard().start()  # on OTHER: a new history
    world.here(12)
    world.settings["replica_id"] = "sftp://store:22/upload/host"
    world.local(12)
    world.replica(20, 40)  # as the host left it
    world.guard().start()
    assert "holds this host's own older history up to TXID 40" in capsys.readouterr().out
    assert world.record() | {"at": None} == {
        "replica": "sftp://store:22/upload/host",
        "txid": 40,
        "how": "returned",
        "at": None,
    }
    assert history(world)["restarts"] == 1 and history(world)["pending"]["after_txid"] == 40
    assert list(Path(world.settings["replica"]["path"]).glob("aside-*")) == []
    assert OTHER in world.guard().destinations()


def test_back_on_an_older_history_that_someone_wrote_to_since_is_refused(world):
    switched(world)
    world.guard().start()
    world.here(12)
    world.settings["replica_id"] = "sftp://store:22/upload/host"
    world.local(12)
    world.replica(20, 40, 45)  # 45: written after this host left at 40 (local 40)
    assert "another writer has been there since" in str(refused(world))


def test_a_wiped_destination_of_this_host_begins_a_new_history(world):
    world.db.write_text("db")
    world.local(60)
    world.here(50)
    world.files(spans(60, start=51))  # what Litestream uploaded after the wipe
    Path(world.settings["replica"]["path"], "ltx").mkdir(parents=True)
    world.guard().start()
    assert world.record()["how"] == "new history"
    assert "no restore plan" in history(world)["last"]["why"]
    assert len(list(Path(world.settings["replica"]["path"]).glob("aside-*"))) == 1


def test_another_history_in_this_hosts_own_path_is_refused(world):
    world.db.write_text("db")
    world.local(60)
    world.here(50)
    world.replica(3, 8)  # restores, but only up to TXID 8: not what this host confirmed
    error = refused(world)
    assert error.code == guard_module.EXIT_REFUSED
    assert "restores up to TXID 8 only, while this host had confirmed TXID 50" in str(error)
    assert "litestream-guard takeover" in str(error)
    assert not (world.bin / "events").exists(), "nothing reset, nothing moved"


def test_a_rolled_back_file_is_refused_also_on_an_emptied_destination(world):
    world.db.write_text("db")
    world.local(30)
    world.here(50)
    (world.state / "new-history.json").write_text(
        json.dumps({"replica": "sftp://store:22/upload/host", "why": "x"})
    )
    error = refused(world)
    assert error.code == guard_module.EXIT_REFUSED and "is at TXID 30" in str(error)
    assert not (world.bin / "events").exists()


def checking(world, monkeypatch, replicated: int, plan: int | None) -> None:
    monkeypatch.setattr(
        guard_module.Guard,
        "socket_request",
        lambda *a, **k: {"txid": 99, "replicated_txid": replicated},
    )
    plan_file = world.bin / "plan.json"
    if plan is None:
        plan_file.unlink(missing_ok=True)
    else:
        plan_file.write_text(json.dumps({"max_txid": f"{plan:016x}", "files": []}))


def test_the_check_publishes_a_restorable_replica(world, monkeypatch):
    world.db.write_text("db")
    world.replica(1, 90)
    world.here(80)
    checking(world, monkeypatch, replicated=90, plan=90)
    world.guard().check()
    assert published(world) | {"checked_at": None, "checked_unix": None} == {
        "destination": "sftp://store:22/upload/host",
        "checked_at": None,
        "checked_unix": None,
        "valid_for": 120,
        "history_restarts": 0,
        "last_history": None,
        "failures": 0,
        "local_txid": 99,
        "replicated_txid": 90,
        "restores_to_txid": 90,
        "restorable": True,
        "new_history_pending": False,
        "reason": "ok",
    }
    assert world.record()["txid"] == 90


def test_the_check_asks_for_a_new_history_after_two_failures(world, monkeypatch):
    systemctl = world.bin / "systemctl"
    systemctl.write_text('#!/bin/sh\necho "systemctl $*" >> "$(dirname "$0")/events"\necho 4242\n')
    systemctl.chmod(0o755)
    monkeypatch.setattr(guard_module, "SYSTEMCTL", str(systemctl))
    killed = []
    monkeypatch.setattr(guard_module.os, "kill", lambda pid, sig: killed.append((pid, sig)))
    world.db.write_text("db")
    world.replica(95, 99)  # what was uploaded after a wipe
    world.files(spans(99, start=95))
    checking(world, monkeypatch, replicated=99, plan=None)
    world.guard().check()
    assert published(world)["restorable"] is False and published(world)["failures"] == 1
    assert not (world.state / "new-history.json").exists(), "one failure could be a race"
    world.guard().check()
    request = json.loads((world.state / "new-history.json").read_text())
    assert request["replica"] == "sftp://store:22/upload/host"
    assert "cannot be restored" in request["why"]
    assert killed == [(4242, guard_module.signal.SIGTERM)], "Litestream ended for its restart"


def test_a_pending_history_turns_green_once_its_snapshot_is_in_the_store(world, monkeypatch):
    switched(world)
    world.guard().start()
    checking(world, monkeypatch, replicated=0, plan=None)
    world.guard().check()
    assert published(world)["new_history_pending"] is True
    assert not (world.state / "new-history.json").exists(), "a pending history is waited for"
    checking(world, monkeypatch, replicated=3, plan=3)
    world.guard().check()
    assert published(world)["new_history_pending"] is False
    assert published(world)["restorable"] is True and published(world)["history_restarts"] == 1
    assert history(world)["pending"] is None


def test_the_drill_does_not_run_during_a_swap(world, capsys):
    import fcntl

    lock = (world.state / "swap.lock").open("ab")
    fcntl.flock(lock, fcntl.LOCK_EX)
    world.settings["drill"] = {"dir": str(world.state), "result": str(world.state / "r.json")}
    world.guard().restore_drill()
    assert "drill skipped" in capsys.readouterr().out
    assert not (world.state / "r.json").exists()


def classify(world, monkeypatch, files: list[dict], takeover: bool = False) -> dict:
    import io

    monkeypatch.setattr(guard_module.sys, "stdin", io.StringIO(json.dumps(files)))
    world.guard().classify(OTHER, takeover)


def test_a_deploy_classifies_the_new_destination(world, monkeypatch, capsys):
    world.db.write_text("db")
    world.here(40)
    classify(world, monkeypatch, [])
    assert json.loads(capsys.readouterr().out)["class"] == "empty"
    with pytest.raises(guard_module.Refused) as caught:
        classify(world, monkeypatch, spans(10, 70))
    assert "holds another history" in str(caught.value) and "Not switching" in str(caught.value)
    assert "litestream_replica_takeover=true" in str(caught.value)
    classify(world, monkeypatch, spans(10, 70), takeover=True)
    assert json.loads(capsys.readouterr().out)["class"] == "takeover"
    request = json.loads((world.state / "new-history.json").read_text())
    assert request["replica"] == OTHER


def test_a_stop_records_the_destination_litestream_ran_on(world, monkeypatch):
    """A deploy that switches destination has written the new settings when
    systemd stops the running Litestream: its last position belongs to the
    old destination, which the next start then notes as left."""
    world.db.write_text("db")
    world.here(40)
    monkeypatch.setenv("MAINPID", "1")
    monkeypatch.setattr(
        guard_module.Guard, "socket_request", lambda *a, **k: {"txid": 45, "replicated_txid": 45}
    )
    world.settings["replica_id"] = OTHER
    world.guard().stop()
    record = json.loads((world.state / "replica-position.json").read_text())
    assert record["replica"] == "sftp://store:22/upload/host" and record["txid"] == 45
    world.local(45)
    world.guard().start()
    assert world.guard().destinations()["sftp://store:22/upload/host"]["txid"] == 45


def test_the_sftp_move_pins_the_host_key_as_openssh_names_it(tmp_path, monkeypatch):
    fake = tmp_path / "sftp"
    fake.write_text(
        '#!/bin/sh\nhere=$(dirname "$0")\necho "$@" > "$here/args"\ncat > "$here/batch"\n'
        'for a; do case $a in UserKnownHostsFile=*) cat "${a#*=}" > "$here/known";; esac; done\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    replica = {
        "type": "sftp",
        "host": "store:22",
        "user": "replica-web1",
        "path": "upload/web1",
        "key-path": "/etc/litestream/sftp_ed25519",
        "host-key": "ecdsa-sha2-nistp256 AAAAE2Vj",
    }
    aside = guard_module.Store.of(replica, {}, 5).move_aside("20261206T000000Z")
    assert aside == "upload/web1/aside-20261206T000000Z"
    assert (tmp_path / "known").read_text() == "store ecdsa-sha2-nistp256 AAAAE2Vj\n", (
        "port 22: no brackets"
    )
    args = (tmp_path / "args").read_text()
    assert "HostKeyAlgorithms=ecdsa-sha2-nistp256" in args and "StrictHostKeyChecking=yes" in args
    assert (tmp_path / "batch").read_text() == (
        "mkdir upload/web1/aside-20261206T000000Z\n"
        "rename upload/web1/ltx upload/web1/aside-20261206T000000Z/ltx\n"
    )
    replica["host"] = "store:2222"
    guard_module.Store.of(replica, {}, 5).move_aside("x")
    assert (tmp_path / "known").read_text().startswith("[store]:2222 ")


def test_a_restore_can_read_another_destination(operator, tmp_path):
    """restore.yml's restore_replica: the destination used before a switch,
    named by a configuration and an environment file of its own."""
    source = tmp_path / "before-switch.yml"
    source.write_text("dbs: []\n")
    (operator.bin / "plan.json").write_text(json.dumps({"max_txid": f"{7:016x}", "files": []}))
    result = guard_module._restore_run(
        operator.guard(),
        "restore-plan",
        guard_module._restore_args("restore-plan", ["--txid", "7", "--source-config", str(source)]),
    )
    assert result["from"] == f"the destination in {source}" and result["restores_to_txid"] == 7
    assert f"-config {source}" in (operator.bin / "events").read_text()
    with pytest.raises(guard_module.Refused, match="cannot be read"):
        guard_module._restore_run(
            operator.guard(),
            "restore-plan",
            guard_module._restore_args("restore-plan", ["--latest", "--source-config", "/nope"]),
        )


def test_the_check_waits_out_a_switch_and_an_unconfirmed_position(world, monkeypatch):
    world.db.write_text("db")
    world.here(80)
    world.files(spans(99, start=95))
    checking(world, monkeypatch, replicated=99, plan=None)
    world.settings["replica_id"] = OTHER  # new settings, Litestream not restarted yet
    for _ in range(3):
        world.guard().check()
    assert published(world)["failures"] == 0 and "switching" in published(world)["reason"]
    assert not (world.state / "new-history.json").exists()
    world.settings["replica_id"] = "sftp://store:22/upload/host"
    checking(world, monkeypatch, replicated=0, plan=None)
    world.guard().check()
    assert published(world)["restorable"] is None, "0: nothing confirmed yet"
    checking(world, monkeypatch, replicated=50, plan=90)
    world.guard().check()
    assert world.record()["txid"] == 80, "the check never lowers the record"


def test_a_rolled_back_file_does_not_begin_a_history_elsewhere(world):
    switched(world, local=30)
    error = refused(world)
    assert error.code == guard_module.EXIT_REFUSED and "is at TXID 30" in str(error)
    assert not (world.bin / "events").exists()


def test_a_check_is_skipped_while_a_start_runs(world):
    import fcntl

    lock = (world.state / "guard.lock").open("ab")
    fcntl.flock(lock, fcntl.LOCK_EX)
    with pytest.raises(guard_module.Refused) as caught, world.guard().exclusive("check"):
        pass
    assert caught.value.code == 0
