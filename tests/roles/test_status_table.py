"""playbooks/filter_plugins/status_table.py: `make status`'s table."""

from __future__ import annotations

import pytest

from ansible_plugin import ROLES, load

status_table = load(ROLES.parent / "playbooks" / "filter_plugins" / "status_table.py").status_table

UNITS = {
    "litestream.service": "active",
    "counter.service": "activating",
    "litestream-restore-drill.timer": "active",
}


@pytest.mark.parametrize("phase", ["fetched", "applied"])
def test_a_host_restoring_says_how_far_its_restore_is(phase):
    report = {
        "units": UNITS,
        "guard": {
            "probe": None,
            "local_txid": None,
            "replica_txid": 42,
            "store_reachable": True,
            "litestream": {"error": "connection refused"},
            "restoring": {
                "phase": phase,
                "done": 430 << 20,
                "total": 1024 << 20,
                "eta_seconds": 7,
            },
        },
        "readiness": {"status": 0, "body": "connection refused"},
    }
    table = status_table({"web1": report})
    (row,) = [line for line in table.splitlines() if line.startswith("web1 ")]
    assert "restoring: 430 / 1024 MiB" in row
    assert f"web1: restoring: {phase} 430 / 1024 MiB, about 7 s left" in table
    assert "readiness:" not in table, "not 'not ready': restoring"


def test_a_host_not_ready_says_why():
    report = {
        "units": UNITS,
        "guard": {"replica_txid": 42, "store_reachable": True, "litestream": {}},
        "readiness": {"status": 503, "body": "replication behind: ..."},
    }
    table = status_table({"web1": report})
    (row,) = [line for line in table.splitlines() if line.startswith("web1 ")]
    assert "NO (503)" in row and "web1: readiness: replication behind" in table


def test_each_other_database_is_a_row_of_its_own():
    names = ["litestream@notes.service", "notes.service", "litestream-restore-drill@notes.timer"]
    notes = {
        "unit_names": names,
        "units": dict(zip(names, ["active", "failed", "active"], strict=True)),
        "guard": {"probe": 7, "local_txid": 9, "replica_txid": 9, "store_reachable": False},
    }
    report = {
        "units": {unit: "active" for unit in UNITS},
        "guard": {"probe": 3, "local_txid": 5, "replica_txid": 5, "store_reachable": True},
        "readiness": {"status": 200, "body": "ok"},
        "databases": {"notes": notes},
    }
    table = status_table({"web1": report})
    (first,) = [line for line in table.splitlines() if line.startswith("web1 ")]
    (other,) = [line for line in table.splitlines() if line.startswith("web1/notes ")]
    assert first.split()[1:4] == ["active", "active", "active"]
    assert other.split()[1:5] == ["active", "failed", "active", "7"]
    assert other.split()[8] == "-", "another app's readiness is not asked"
    assert "web1/notes: store:" in table and "web1: store:" not in table
    assert "web1/notes: notes.service is failed" in table, "a stopped app is said"
