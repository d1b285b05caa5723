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
    cat "$here/ltx.json"
    ;;
restore)
    [ -e "$here/unreachable" ] && { echo "Error: dial tcp: connection refused" >&2; exit 1; }
    if [ -e "$here/restorable" ]; then
        for last; do :; done
        out=$last
        case "$*" in *" -o "*) out=$(echo "$*" | sed 's/.* -o \([^ ]*\) .*/\1/');; esac
        if [ -e "$here/restore_source" ]; then cp "$here/restore_source" "$out"
        else echo restored > "$out"; fi
    else
        echo 'level=INFO msg="no matching backups found"' >&2
    fi
    ;;
esac
"""


def ltx(*max_txids: int) -> str:
    return json.dumps(
        [
            {"level": 0, "min_txid": f"{t:016x}", "max_txid": f"{t:016x}", "size": 1}
            for t in max_txids
        ]
    )


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
    world.guard().start()
    assert world.record()["txid"] == replica


def test_database_behind_its_replica_is_refused(world):
    world.db.write_text("db")
    world.local(3)
    world.replica(1, 5)
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


def test_adopting_is_allowed_once_for_the_replica_position_it_names(world):
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
    assert not adopt.exists(), "an adopt is used once"
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
