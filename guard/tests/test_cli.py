"""cli: the entry point, its subcommands and exit codes."""

from __future__ import annotations

import json

import pytest

from litestream_guard import cli
from litestream_guard import settings as settings_module
from litestream_guard.errors import EXIT_REFUSED


def test_settings_file_is_what_main_reads(world, monkeypatch, tmp_path):
    settings = tmp_path / "guard.json"
    settings.write_text(json.dumps(world.settings))
    monkeypatch.setattr(settings_module, "SETTINGS", settings)
    world.db.write_text("db")
    world.local(3)
    world.replica(5)
    assert cli.main(["litestream-guard", "start"]) == EXIT_REFUSED
    assert cli.main(["litestream-guard", "nonsense"]) == 2


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
    monkeypatch.setattr(settings_module, "SETTINGS", settings)
    assert cli.main(["litestream-guard", *args]) == 2
