"""drill: the scheduled restore drill."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import litestream_control
from conftest import answer_sync, counter_db
from litestream_guard import drill as drill_cmd
from litestream_guard.errors import Refused


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
    world.position = answer_sync(monkeypatch, {"txid": 7, "replicated_txid": 7})
    return workdir


def drill_result(world, workdir: Path, passes: bool) -> dict:
    if passes:
        drill_cmd.restore_drill(world.host())
    else:
        with pytest.raises(Refused):
            drill_cmd.restore_drill(world.host())
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


def test_a_sync_racing_the_drills_call_is_confirmed_by_the_next_call(world, drill, monkeypatch):
    """An app that syncs all the time (ack mode): another sync made a file
    between the drill's upload and its answer (txid 8, replica 7); the next
    answer's replica covers 8, although the database has moved on again."""
    answers = iter([{"txid": 8, "replicated_txid": 7}, {"txid": 9, "replicated_txid": 8}])
    monkeypatch.setattr(litestream_control.Control, "request", lambda *a, **k: next(answers))
    world.replica(8, 8)
    assert drill_result(world, drill, passes=True)["replica_txid"] == 8


def test_a_damaged_restored_file_fails_the_drill(world, drill):
    (world.bin / "restore_source").write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)
    assert drill_result(world, drill, passes=False)["error"]


def test_an_unreachable_store_fails_the_drill(world, drill):
    world.flag("unreachable")
    assert drill_result(world, drill, passes=False)["error"]


def test_the_drill_does_not_run_during_a_swap(world, capsys):
    import fcntl

    lock = (world.state / "swap.lock").open("ab")
    fcntl.flock(lock, fcntl.LOCK_EX)
    world.settings["drill"] = {"dir": str(world.state), "result": str(world.state / "r.json")}
    drill_cmd.restore_drill(world.host())
    assert "drill skipped" in capsys.readouterr().out
    assert not (world.state / "r.json").exists()
