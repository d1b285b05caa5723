"""destinations: switching stores, a wiped replica, a reused path; the
replica check, classify at deploy, takeover."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from conftest import OTHER, answer_sync, refused, spans
from litestream_guard import destinations, systemd
from litestream_guard.errors import EXIT_REFUSED, Refused
from litestream_guard.lifecycle import start


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


def checking(world, monkeypatch, replicated: int, plan: int | None, local: int = 99) -> None:
    answer_sync(monkeypatch, {"txid": local, "replicated_txid": replicated})
    plan_file = world.bin / "plan.json"
    if plan is None:
        plan_file.unlink(missing_ok=True)
    else:
        plan_file.write_text(json.dumps({"max_txid": f"{plan:016x}", "files": []}))


def classify(world, monkeypatch, files: list[dict], takeover: bool = False) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(files)))
    destinations.classify(world.host(), OTHER, takeover)


def test_a_switch_to_an_empty_destination_begins_a_new_history(world, capsys):
    switched(world)
    start(world.host())
    assert "litestream reset" in (world.bin / "events").read_text()
    assert world.record()["how"] == "new history" and world.record()["txid"] == 0
    assert history(world)["restarts"] == 1 and history(world)["pending"]["after_txid"] == 0
    assert published(world)["new_history_pending"] is True
    err = capsys.readouterr().err
    assert "REPLICA HISTORY RESTARTED" in err and "holds no LTX file" in err
    left = world.host().state.destinations()["sftp://store:22/upload/host"]
    assert left["txid"] == 40 and left["local_txid"] == 40


def test_a_destination_holding_another_history_is_refused_with_two_ways_out(world):
    switched(world)
    world.replica(10, 70)
    error = refused(world)
    assert error.code == EXIT_REFUSED
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
    start(world.host())
    (aside,) = Path(world.settings["replica"]["path"]).glob("aside-*")
    assert (aside / "ltx" / "0" / "0000000000000001-000000000000000a.ltx").read_text() == "foreign"
    assert not (world.state / "new-history.json").exists()
    assert history(world)["last"]["aside"] == str(aside)
    assert world.record()["how"] == "new history"


def returned(world) -> None:
    """Switched away (a new history there), then back to the destination
    this host left at TXID 40."""
    switched(world)
    start(world.host())  # on OTHER: a new history
    world.here(12)
    world.settings["replica_id"] = "sftp://store:22/upload/host"
    world.local(12)
    world.replica(20, 40)  # as the host left it
    start(world.host())


def test_back_on_this_hosts_own_older_history_it_goes_on_there(world, capsys):
    returned(world)
    assert "holds this host's own older history up to TXID 40" in capsys.readouterr().out
    assert world.record() | {"at": None} == {
        "replica": "sftp://store:22/upload/host",
        "txid": 40,
        "how": "returned",
        "at": None,
    }
    assert history(world)["restarts"] == 1 and history(world)["pending"]["after_txid"] == 40
    assert list(Path(world.settings["replica"]["path"]).glob("aside-*")) == []
    assert OTHER in world.host().state.destinations()


def test_back_on_an_older_history_that_someone_wrote_to_since_is_refused(world):
    switched(world)
    start(world.host())
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
    start(world.host())
    assert world.record()["how"] == "new history"
    assert "no restore plan" in history(world)["last"]["why"]
    assert len(list(Path(world.settings["replica"]["path"]).glob("aside-*"))) == 1


def test_another_history_in_this_hosts_own_path_is_refused(world):
    world.db.write_text("db")
    world.local(60)
    world.here(50)
    world.replica(3, 8)  # restores, but only up to TXID 8: not what this host confirmed
    error = refused(world)
    assert error.code == EXIT_REFUSED
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
    assert error.code == EXIT_REFUSED and "is at TXID 30" in str(error)
    assert not (world.bin / "events").exists()


def test_the_check_publishes_a_restorable_replica(world, monkeypatch):
    world.db.write_text("db")
    world.replica(1, 90)
    world.here(80)
    checking(world, monkeypatch, replicated=90, plan=90)
    destinations.check(world.host())
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
    monkeypatch.setattr(systemd, "SYSTEMCTL", str(systemctl))
    killed = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: killed.append((pid, sig)))
    world.db.write_text("db")
    world.replica(95, 99)  # what was uploaded after a wipe
    world.files(spans(99, start=95))
    checking(world, monkeypatch, replicated=99, plan=None)
    destinations.check(world.host())
    assert published(world)["restorable"] is False and published(world)["failures"] == 1
    assert not (world.state / "new-history.json").exists(), "one failure could be a race"
    destinations.check(world.host())
    request = json.loads((world.state / "new-history.json").read_text())
    assert request["replica"] == "sftp://store:22/upload/host"
    assert "cannot be restored" in request["why"]
    assert killed == [(4242, signal.SIGTERM)], "Litestream ended for its restart"


def test_a_pending_history_turns_green_once_its_snapshot_is_in_the_store(world, monkeypatch):
    switched(world)
    start(world.host())
    checking(world, monkeypatch, replicated=0, plan=None)
    destinations.check(world.host())
    assert published(world)["new_history_pending"] is True
    assert not (world.state / "new-history.json").exists(), "a pending history is waited for"
    checking(world, monkeypatch, replicated=3, plan=3)
    destinations.check(world.host())
    assert published(world)["new_history_pending"] is False
    assert published(world)["restorable"] is True and published(world)["history_restarts"] == 1
    assert history(world)["pending"] is None


def test_back_on_its_own_history_an_idle_database_is_green_once_litestream_settles(
    world, monkeypatch
):
    """No write since the return: Litestream's waited sync settles at the
    TXID it took over (no snapshot is due), which the replica holds."""
    returned(world)
    checking(world, monkeypatch, replicated=39, plan=40, local=40)  # not all uploaded yet
    destinations.check(world.host())
    assert published(world)["new_history_pending"] is True
    checking(world, monkeypatch, replicated=40, plan=40, local=40)
    destinations.check(world.host())
    assert published(world)["new_history_pending"] is False
    assert history(world)["pending"] is None


def test_a_deploy_classifies_the_new_destination(world, monkeypatch, capsys):
    world.db.write_text("db")
    world.here(40)
    classify(world, monkeypatch, [])
    assert json.loads(capsys.readouterr().out)["class"] == "empty"
    with pytest.raises(Refused) as caught:
        classify(world, monkeypatch, spans(10, 70))
    assert "holds another history" in str(caught.value) and "Not switching" in str(caught.value)
    assert "litestream_replica_takeover=true" in str(caught.value)
    classify(world, monkeypatch, spans(10, 70), takeover=True)
    assert json.loads(capsys.readouterr().out)["class"] == "takeover"
    request = json.loads((world.state / "new-history.json").read_text())
    assert request["replica"] == OTHER


def test_the_check_waits_out_a_switch_and_an_unconfirmed_position(world, monkeypatch):
    world.db.write_text("db")
    world.here(80)
    world.files(spans(99, start=95))
    checking(world, monkeypatch, replicated=99, plan=None)
    world.settings["replica_id"] = OTHER  # new settings, Litestream not restarted yet
    for _ in range(3):
        destinations.check(world.host())
    assert published(world)["failures"] == 0 and "switching" in published(world)["reason"]
    assert not (world.state / "new-history.json").exists()
    world.settings["replica_id"] = "sftp://store:22/upload/host"
    checking(world, monkeypatch, replicated=0, plan=None)
    destinations.check(world.host())
    assert published(world)["restorable"] is None, "0: nothing confirmed yet"
    checking(world, monkeypatch, replicated=50, plan=90)
    destinations.check(world.host())
    assert world.record()["txid"] == 80, "the check never lowers the record"


def test_a_rolled_back_file_does_not_begin_a_history_elsewhere(world):
    switched(world, local=30)
    error = refused(world)
    assert error.code == EXIT_REFUSED and "is at TXID 30" in str(error)
    assert not (world.bin / "events").exists()


def test_a_check_is_skipped_while_a_start_runs(world):
    import fcntl

    lock = (world.state / "guard.lock").open("ab")
    fcntl.flock(lock, fcntl.LOCK_EX)
    with pytest.raises(Refused) as caught, world.host().exclusive("check"):
        pass
    assert caught.value.code == 0
