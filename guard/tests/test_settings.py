"""settings: guard.json as Ansible writes it, read once, every default here."""

from __future__ import annotations

from pathlib import Path

import pytest

from litestream_guard.settings import ReplicaCheck, Settings


def test_the_defaults(world):
    settings = Settings.from_dict(world.settings | {"unknown": 1})
    assert settings.db == Path(world.settings["db"]) and settings.group == ""
    assert settings.restart_max == 5.0 and settings.trust_record_when_unreachable is True
    assert settings.replica_check == ReplicaCheck("", 120, 2)
    assert settings.drill is None


def test_what_ansible_writes(world):
    settings = Settings.from_dict(
        world.settings
        | {
            "group": "counter",
            "restart_max": "30",
            "trust_record_when_unreachable": False,
            "replica_check": {"unit": "c.service", "valid_for": "300"},
            "drill": {"dir": "/d", "result": "/d/r.json", "probe": "", "timeout": 60},
        }
    )
    assert settings.restart_max == 30.0 and settings.trust_record_when_unreachable is False
    assert settings.replica_check == ReplicaCheck("c.service", 300, 2)
    assert settings.drill.result == Path("/d/r.json") and settings.drill.timeout == 60


def test_a_missing_key_is_named(world):
    del world.settings["replica_id"], world.settings["binary"]
    with pytest.raises(ValueError, match="missing binary, replica_id"):
        Settings.from_dict(world.settings)
