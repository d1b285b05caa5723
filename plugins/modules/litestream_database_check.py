#!/usr/bin/python
"""Module litestream_database_check: what Litestream needs from an app's database and unit."""

from __future__ import annotations

import grp
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: litestream_database_check
short_description: Check what Litestream needs from an app's SQLite database and its unit
description:
  - >-
    Reads the first 100 bytes of O(path) (the header) and, when O(unit) is given and installed,
    what systemd says of that unit (C(systemctl show)). Returns one sentence per problem, each
    saying what to change; an empty list: nothing wrong. Changes nothing (check mode as a
    real run).
  - >-
    The database, when it exists: an SQLite file (C(SQLite format 3)), in WAL mode (header bytes
    18 and 19 are 2; a rollback-journal file would be switched to WAL by Litestream at its start,
    behind the app's back, and an app that sets another journal_mode when it opens the file
    breaks replication). A missing database is no problem (restored from the replica, or created
    by the app). It belongs to O(group) and is group-writable: Litestream writes it, and its
    -wal and -shm files (which SQLite makes with the database's mode), through that group.
  - >-
    The unit, when installed: it runs with O(group) (its Group=, or its User='s primary group),
    so the -wal and -shm files the app creates belong to the group Litestream's account shares
    the directory through (the litestream role gives the unit UMask=0007, group read-write);
    not with DynamicUser=yes (a group no other account can share). A unit not installed yet is
    no problem (the app's role installs it later in the run).
options:
  path:
    description: The database file.
    type: str
    required: true
  group:
    description: The group the app and Litestream share the database directory through.
    type: str
    required: true
  unit:
    description: The app's unit (NAME.service) that writes the database; "" for none.
    type: str
    default: ""
notes:
  - Supports check mode.
"""

EXAMPLES = r"""
- name: Check what Litestream needs from the app's database
  litestream_database_check:
    path: /var/lib/wiki/wiki.db
    group: wiki
    unit: wiki.service
  register: __litestream_database
"""

RETURN = r"""
database:
  description: "{exists, sqlite, journal: wal, rollback or null}."
  type: dict
  returned: success
unit:
  description: "{found, user, group (the effective one), dynamic_user}; found is false for no unit."
  type: dict
  returned: success
problems:
  description: One sentence per problem, each saying what to change.
  type: list
  elements: str
  returned: success
"""

MAGIC = b"SQLite format 3\x00"
WAL = 2


def read_header(path: str) -> bytes | None:
    """The file's first 100 bytes; None when it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read(100)
    except FileNotFoundError:
        return None


def database_facts(header: bytes | None) -> dict:
    if header is None:
        return {"exists": False, "sqlite": False, "journal": None}
    if len(header) < 100 or not header.startswith(MAGIC):
        # An empty file is what sqlite3 leaves before its first write.
        return {"exists": True, "sqlite": len(header) == 0, "journal": None}
    wal = header[18] == WAL and header[19] == WAL
    return {"exists": True, "sqlite": True, "journal": "wal" if wal else "rollback"}


def database_problems(path: str, facts: dict) -> list[str]:
    if (
        not facts["exists"]
        or facts["journal"] == "wal"
        or (facts["sqlite"] and facts["journal"] is None)
    ):
        return []
    if not facts["sqlite"]:
        return [
            f"{path} is not an SQLite database (it does not begin with 'SQLite format 3'):"
            " litestream_db_path must name the app's SQLite file."
        ]
    return [
        f"{path} is in rollback-journal mode (journal_mode delete, truncate or persist):"
        " Litestream replicates WAL databases only, and would switch it to WAL at its start,"
        " behind the app's back. With the app stopped, run"
        f" `sqlite3 {path} 'PRAGMA journal_mode=WAL'` once (the mode stays in the file), and make"
        " sure the app never sets another journal_mode when it opens it."
    ]


def file_facts(st: os.stat_result) -> dict:
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return {"mode": f"{stat.S_IMODE(st.st_mode):04o}", "group": group}


def mode_problems(path: str, group: str, facts: dict) -> list[str]:
    """Litestream writes the database's -wal and -shm files through the
    shared group, and SQLite gives those files the database file's mode."""
    if not facts.get("mode"):
        return []
    mode = int(facts["mode"], 8)
    if mode & 0o060 == 0o060 and facts.get("group") == group:
        return []
    return [
        f"{path} is mode {facts['mode']}, group {facts.get('group')}: Litestream writes it (and its"
        f" -wal and -shm, which SQLite makes with the database's mode) through the group {group},"
        f" so it must be group {group} and group-writable: with the app stopped,"
        f" `chgrp {group} {path}* && chmod g+rw {path}*`. SQLite creates a missing database 0644"
        " less the umask (never group-writable): the app must create the file first, 0666 less"
        " its umask (the role gives the unit UMask=0007), as the counter does."
    ]


def parse_show(text: str) -> dict[str, str]:
    """`systemctl show -p A -p B UNIT` output: {A: value, B: value}."""
    found = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            found[key] = value
    return found


def primary_group(user: str) -> str:
    """The primary group of an account ("root" for no User=); "" if unknown."""
    try:
        return grp.getgrgid(pwd.getpwnam(user or "root").pw_gid).gr_name
    except KeyError:
        return ""


def unit_facts(unit: str, show: dict[str, str]) -> dict:
    if not unit or show.get("LoadState", "not-found") == "not-found":
        return {"found": False, "user": "", "group": "", "dynamic_user": False}
    user = show.get("User", "")
    return {
        "found": True,
        "user": user or "root",
        "group": show.get("Group", "") or primary_group(user),
        "dynamic_user": show.get("DynamicUser", "no") == "yes",
    }


def unit_problems(unit: str, group: str, facts: dict) -> list[str]:
    if not facts["found"]:
        return []
    if facts["dynamic_user"]:
        return [
            f"{unit} runs with DynamicUser=yes: its files belong to an account made at each start,"
            f" which Litestream's account cannot share. Give it a fixed User= and Group={group}"
            " (litestream_db_group)."
        ]
    if facts["group"] != group:
        return [
            f"{unit} runs as {facts['user']} with group {facts['group'] or '(unknown)'}, but"
            f" the database is shared with Litestream's account through group {group}"
            " (litestream_db_group): the -wal and -shm files the app creates would not be"
            " Litestream's to write. Set litestream_db_group to"
            f" {facts['group'] or 'the group the app runs with'}, or Group={group} in the unit."
        ]
    return []


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "str", "required": True},
            "group": {"type": "str", "required": True},
            "unit": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    path, group, unit = module.params["path"], module.params["group"], module.params["unit"]
    try:
        database = database_facts(read_header(path))
    except OSError as e:
        module.fail_json(msg=f"reading {path}: {e.strerror}")
    show: dict[str, str] = {}
    if unit:
        rc, out, err = module.run_command(
            [
                "systemctl",
                "show",
                "-p",
                "LoadState",
                "-p",
                "User",
                "-p",
                "Group",
                "-p",
                "DynamicUser",
                unit,
            ]
        )
        if rc != 0:
            module.fail_json(msg=f"systemctl show {unit}: {err.strip() or out.strip()}")
        show = parse_show(out)
    units = unit_facts(unit, show)
    if database["exists"]:
        database |= file_facts(os.stat(path))
    problems = (
        database_problems(path, database)
        + mode_problems(path, group, database)
        + unit_problems(unit, group, units)
    )
    module.exit_json(changed=False, database=database, unit=units, problems=problems)


if __name__ == "__main__":
    main()
