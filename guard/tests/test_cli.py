"""cli: the entry point, its subcommands and exit codes."""

from __future__ import annotations

import fcntl
import io
import json
import subprocess
import sys

import pytest

from litestream_guard import cli, lifecycle
from litestream_guard import settings as settings_module
from litestream_guard.errors import EXIT_REFUSED, Refused


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


def test_help_needs_no_settings(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(settings_module, "SETTINGS", tmp_path / "absent.json")
    assert cli.main(["litestream-guard", "--help"]) == 0
    out = capsys.readouterr().out
    for name in ("start", "stop", "app-stopped", "classify", "restore-to", "restore-drill"):
        assert name in out
    assert cli.main(["litestream-guard"]) == 2, "no command: the usage, exit 2"


def test_an_operator_error_is_a_sentence_and_its_exit_code(world, monkeypatch, capsys):
    """A timeout nobody caught on the way is still a sentence (exit 1),
    never a traceback."""
    monkeypatch.setattr(settings_module, "SETTINGS", world.write_settings())

    def hangs(host):
        raise subprocess.TimeoutExpired(["/usr/local/bin/litestream", "restore", "x"], 60)

    monkeypatch.setattr(lifecycle, "start", hangs)
    assert cli.main(["litestream-guard", "start"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "`litestream restore` did not finish within 60 s: try again later"


def test_a_restore_timeout_through_the_command_line(operator, monkeypatch, capsys):
    operator.local(3)
    operator.flag("restore_hangs")
    operator.settings["restore_timeout"] = 1
    monkeypatch.setattr(settings_module, "SETTINGS", operator.write_settings())
    assert cli.main(["litestream-guard", "adopt-local"]) == 1
    err = capsys.readouterr().err
    assert "timed out after 1 s): nothing adopted" in err and "Traceback" not in err


def test_unusable_settings_are_a_sentence(world, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(settings_module, "SETTINGS", tmp_path / "absent.json")
    assert cli.main(["litestream-guard", "status"]) == 1
    assert "Cannot read the guard's settings" in capsys.readouterr().err
    del world.settings["db"]
    monkeypatch.setattr(settings_module, "SETTINGS", world.write_settings())
    assert cli.main(["litestream-guard", "status"]) == 1
    assert "cannot be used: missing db" in capsys.readouterr().err


def test_a_check_finding_a_start_running_exits_0(world, monkeypatch, capsys):
    monkeypatch.setattr(settings_module, "SETTINGS", world.write_settings())
    lock = (world.state / "guard.lock").open("ab")
    fcntl.flock(lock, fcntl.LOCK_EX)
    assert cli.main(["litestream-guard", "check"]) == 0
    assert "this check is skipped" in capsys.readouterr().err


def test_classify_reads_its_arguments(world, monkeypatch, capsys):
    monkeypatch.setattr(settings_module, "SETTINGS", world.write_settings())
    monkeypatch.setattr(sys, "stdin", io.StringIO("[]"))
    assert cli.main(["litestream-guard", "classify", "s3://b/p", "--takeover"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "destination": "s3://b/p",
        "class": "empty",
        "why": "empty: a new history begins there",
    }


# Every command line the roles, playbooks and units give the guard (grep
# them for litestream-guard and __litestream_guard): each one parses.
CALLED_AS = [
    ["start"],
    ["stop"],
    ["started"],
    ["stopped"],
    ["app-stopped", "counter.service"],
    ["check"],
    ["restore-drill"],
    ["status"],
    ["status", "--json"],
    ["adopt-local"],
    ["restore-from-replica"],
    ["takeover"],
    ["classify", "s3://store/bucket/path"],
    ["classify", "s3://store/bucket/path", "--takeover"],
    ["restore-plan", "--json", "--latest"],
    ["restore-plan", "--json", "--timestamp", "2026-11-30T10:00:00Z"],
    [
        "restore-plan",
        "--json",
        "--txid",
        "2a",
        "--source-config",
        "/x.yml",
        "--source-env",
        "/x.env",
    ],
    ["restore-copy", "--json", "--latest", "--output", "/srv/copy.db", "--timeout", "60"],
    ["restore-to", "--json", "--txid", "2a", "--timeout", "60"],
    ["restore-to", "--json", "--from-file", "/srv/copy.db", "--timeout", "60"],
]


@pytest.mark.parametrize("argv", CALLED_AS, ids=" ".join)
def test_every_command_line_the_deploy_uses_parses(argv):
    opts = cli.parser().parse_args(argv)
    assert callable(opts.run)


def test_database_names_one_of_the_hosts_other_databases(world, monkeypatch, tmp_path, capsys):
    first = tmp_path / "guard.json"
    first.write_text(json.dumps(world.settings))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "guard.json").write_text("{not json")
    monkeypatch.setattr(settings_module, "SETTINGS", first)
    # Its own file is read (here unusable: a sentence naming it, exit 1).
    assert cli.main(["litestream-guard", "--database", "notes", "status"]) == 1
    assert str(tmp_path / "notes" / "guard.json") in capsys.readouterr().err
    # A database the host does not have: named, with those it has.
    assert cli.main(["litestream-guard", "--database", "wiki", "status"]) == 2
    err = capsys.readouterr().err
    assert "No database 'wiki'" in err and "databases: notes" in err, err
    assert cli.main(["litestream-guard", "--database", "../x", "status"]) == 2
    assert settings_module.path_of(None, first) == first


def test_the_staged_settings_are_no_database(tmp_path):
    first = tmp_path / "guard.json"
    for name in ("staged", "notes"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "guard.json").write_text("{}")
    assert settings_module.databases(first) == ["notes"]
    with pytest.raises(Refused):
        settings_module.path_of("staged", first)
