"""pitr: restore-plan, restore-copy and restore-to (point-in-time restore
and clone)."""

from __future__ import annotations

import json

import pytest

from conftest import asides, counter_db, refused
from litestream_guard import cli, pitr
from litestream_guard import settings as settings_module
from litestream_guard.errors import EXIT_REFUSED, Refused
from litestream_guard.lifecycle import start


def target(**kw):
    return pitr.Target(**kw)


def restore_args(*args: str):
    return cli.parser().parse_args(["restore-plan", *args])


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
    with pytest.raises(Refused) as caught:
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
    plan = pitr.restore_plan(operator.host(), target(txid="4"))
    assert plan["restores_to_txid"] == 4 and plan["replica_txid"] == 9 and plan["local_txid"] == 9
    assert plan["files"] == [{"level": 9, "name": "a.ltx", "size": 9, "timestamp": "t"}]
    assert operator.events() == ["litestream restore"], "nothing but the dry run"
    (operator.bin / "plan.json").unlink()
    with pytest.raises(Refused, match="No restore to TXID 5"):
        pitr.restore_plan(operator.host(), target(txid="5"))


def test_a_copy_touches_nothing_else(operator, tmp_path):
    out = tmp_path / "copy.db"
    result = pitr.restore_copy(operator.host(), target(txid="4"), out, 10)
    assert out.read_text() == "restored\n" and result["txid"] == 4
    assert "-integrity-check full" in (operator.bin / "events").read_text()
    assert not any(e.startswith("systemctl") for e in operator.events())
    assert operator.db.read_text() == "live"
    with pytest.raises(Refused, match="not overwriting"):
        pitr.restore_copy(operator.host(), target(txid="4"), out, 10)


def test_restore_to_a_point_keeps_the_live_file_and_adopts(operator):
    result = pitr.restore_to(operator.host(), target(timestamp="2026-11-30T17:00:00Z"), None, 10)
    assert operator.events()[:2] == ["litestream restore", "systemctl stop"], (
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
    start(operator.host())
    operator.replica(1, 9, 10)
    assert refused(operator).code == EXIT_REFUSED


def test_restore_to_latest_restores_once_stopped(operator):
    pitr.restore_to(operator.host(), target(latest=True), None, 10)
    assert operator.events()[:2] == ["systemctl stop", "litestream restore"]


def test_restore_to_refuses_when_the_replica_lacks_local_writes(operator):
    operator.local(12)  # the stop's final sync did not reach the store
    with pytest.raises(Refused, match="does not hold the last local writes"):
        pitr.restore_to(operator.host(), target(txid="4"), None, 10)
    assert operator.db.read_text() == "live" and asides(operator) == []
    assert operator.events()[-1] == "systemctl is-active", "the units were started again"
    assert "systemctl start" in operator.events()
    assert [p.name for p in operator.db.parent.iterdir() if ".restore-" in p.name] == []


def test_restore_to_an_unknown_point_stops_nothing(operator):
    operator.flag("restorable", on=False)
    with pytest.raises(Refused, match="failed"):
        pitr.restore_to(operator.host(), target(txid="40"), None, 10)
    assert not any(e.startswith("systemctl") for e in operator.events())
    assert operator.db.read_text() == "live"


def test_restore_to_waits_for_the_replica_to_go_on(operator, monkeypatch):
    operator.synced["replicated_txid"] = 9
    operator.settings["stop_sync_timeout"] = -29.5
    with pytest.raises(Refused, match="has not gone past TXID 9"):
        pitr.restore_to(operator.host(), target(txid="4"), None, 10)


def test_restore_to_a_clones_file(operator, tmp_path):
    clone = counter_db(tmp_path / "clone.db", 42)
    result = pitr.restore_to(operator.host(), None, clone, 10)
    assert operator.db.read_bytes() == clone.read_bytes()
    assert result["restored"] == f"the database file {clone}" and result["replica_txid_after"] == 10
    assert not any(e.startswith("litestream") for e in operator.events()), (
        "no restore from its replica"
    )


def test_restore_to_refuses_a_damaged_file_before_stopping(operator, tmp_path):
    clone = counter_db(tmp_path / "clone.db", 42)
    data = bytearray(clone.read_bytes())
    data[4096:8192] = b"\x0d\xff\xff" * 1365 + b"\xff"  # the table's page, garbled
    clone.write_bytes(bytes(data))
    with pytest.raises(Refused, match="integrity check"):
        pitr.restore_to(operator.host(), None, clone, 10)
    (tmp_path / "text").write_text("not a database")
    with pytest.raises(Refused, match="not a SQLite database"):
        pitr.restore_to(operator.host(), None, tmp_path / "text", 10)
    assert not (operator.bin / "events").exists(), "nothing stopped"
    assert operator.db.read_text() == "live"


def test_json_output_is_the_result_alone(operator, monkeypatch, tmp_path, capsys):
    settings = tmp_path / "guard.json"
    settings.write_text(json.dumps(operator.settings))
    monkeypatch.setattr(settings_module, "SETTINGS", settings)
    assert cli.main(["litestream-guard", "restore-to", "--json", "--txid", "4"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["replica_txid_after"] == 10
    assert "Starting counter.service" in err and "kept in" in err


def test_a_restore_can_read_another_destination(operator, tmp_path):
    """restore.yml's restore_replica: the destination used before a switch,
    named by a configuration and an environment file of its own."""
    source = tmp_path / "before-switch.yml"
    source.write_text("dbs: []\n")
    (operator.bin / "plan.json").write_text(json.dumps({"max_txid": f"{7:016x}", "files": []}))
    result = pitr.run(
        operator.host(), "restore-plan", restore_args("--txid", "7", "--source-config", str(source))
    )
    assert result["from"] == f"the destination in {source}" and result["restores_to_txid"] == 7
    assert f"-config {source}" in (operator.bin / "events").read_text()
    with pytest.raises(Refused, match="cannot be read"):
        pitr.run(
            operator.host(), "restore-plan", restore_args("--latest", "--source-config", "/nope")
        )
