"""The litestream_database_check module: what Litestream needs from an app's database and unit."""

from __future__ import annotations

import grp
import os
import pwd
import sqlite3
from functools import partial
from pathlib import Path

import pytest

import ansible_plugin
from ansible_plugin import PLUGINS, load

MODULE = PLUGINS / "modules" / "litestream_database_check.py"
check = load(MODULE)
run_module = partial(ansible_plugin.run_module, MODULE)


def database(path: Path, journal_mode: str) -> str:
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA journal_mode={journal_mode}")
        db.execute("CREATE TABLE IF NOT EXISTS visits (n INTEGER)")
    return str(path)


def facts_of(path: str) -> dict:
    return check.database_facts(check.read_header(path))


def test_a_wal_database_a_missing_one_and_an_empty_file_pass(tmp_path: Path) -> None:
    wal = database(tmp_path / "wal.db", "wal")
    (tmp_path / "empty.db").touch()
    assert facts_of(wal) == {"exists": True, "sqlite": True, "journal": "wal"}
    for path in (wal, str(tmp_path / "missing.db"), str(tmp_path / "empty.db")):
        assert check.database_problems(path, facts_of(path)) == [], path


@pytest.mark.parametrize("mode", ["delete", "truncate", "persist"])
def test_a_rollback_journal_database_says_how_to_switch(tmp_path: Path, mode: str) -> None:
    path = database(tmp_path / "app.db", mode)
    assert facts_of(path)["journal"] == "rollback"
    (problem,) = check.database_problems(path, facts_of(path))
    assert "rollback-journal mode" in problem
    assert f"`sqlite3 {path} 'PRAGMA journal_mode=WAL'`" in problem


def test_a_file_that_is_not_sqlite_is_named(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    path.write_text("not a database\n")
    (problem,) = check.database_problems(str(path), facts_of(str(path)))
    assert problem.startswith(f"{path} is not an SQLite database")


def me() -> tuple[str, str]:
    user = pwd.getpwuid(os.getuid()).pw_name
    return user, grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name


def test_a_unit_running_with_the_shared_group_passes() -> None:
    user, group = me()
    for show in (
        {"LoadState": "loaded", "User": user, "Group": ""},
        {"LoadState": "loaded", "Group": group},
    ):
        facts = check.unit_facts("app.service", show)
        assert check.unit_problems("app.service", group, facts) == [], show


def test_a_unit_not_installed_yet_or_none_is_not_checked() -> None:
    for unit, show in (("app.service", {"LoadState": "not-found"}), ("", {})):
        facts = check.unit_facts(unit, show)
        assert facts["found"] is False
        assert check.unit_problems(unit, "wiki", facts) == []


def test_a_unit_with_another_group_is_told_what_to_set() -> None:
    facts = check.unit_facts(
        "wiki.service", {"LoadState": "loaded", "User": "wiki", "Group": "www-data"}
    )
    (problem,) = check.unit_problems("wiki.service", "wiki", facts)
    assert "runs as wiki with group www-data" in problem
    assert "Set litestream_db_group to www-data, or Group=wiki in the unit" in problem


def test_a_dynamic_user_cannot_share() -> None:
    facts = check.unit_facts(
        "wiki.service", {"LoadState": "loaded", "DynamicUser": "yes", "Group": "wiki"}
    )
    (problem,) = check.unit_problems("wiki.service", "wiki", facts)
    assert "DynamicUser=yes" in problem


def test_parse_show() -> None:
    text = "LoadState=loaded\nUser=wiki\nGroup=\nDynamicUser=no\n"
    assert check.parse_show(text) == {
        "LoadState": "loaded",
        "User": "wiki",
        "Group": "",
        "DynamicUser": "no",
    }


@pytest.mark.parametrize("check_mode", [False, True])
def test_the_module_reports_problems_and_changes_nothing(tmp_path: Path, check_mode: bool) -> None:
    path = database(tmp_path / "app.db", "delete")
    os.chmod(path, 0o660)
    group = grp.getgrgid(os.stat(path).st_gid).gr_name
    before = Path(path).read_bytes()
    result = run_module({"path": path, "group": group}, check_mode=check_mode)
    assert result["changed"] is False
    assert result["database"] == {
        "exists": True,
        "sqlite": True,
        "journal": "rollback",
        "mode": "0660",
        "group": group,
    }
    assert result["unit"]["found"] is False
    assert len(result["problems"]) == 1
    assert Path(path).read_bytes() == before


def test_a_database_the_shared_group_cannot_write_says_how_to_share_it() -> None:
    good = {"mode": "0660", "group": "notes"}
    assert check.mode_problems("/var/lib/notes/notes.db", "notes", good) == []
    assert check.mode_problems("/x.db", "notes", {}) == [], "no file: nothing to say"
    for facts in ({"mode": "0640", "group": "notes"}, {"mode": "0660", "group": "other"}):
        (problem,) = check.mode_problems("/var/lib/notes/notes.db", "notes", facts)
        assert f"mode {facts['mode']}, group {facts['group']}" in problem
        assert "chgrp notes /var/lib/notes/notes.db* && chmod g+rw" in problem
        assert "create the file first, 0666 less" in problem
