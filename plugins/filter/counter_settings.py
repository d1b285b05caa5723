"""Filter counter_settings_problems: what is wrong with the counter role's settings and host."""

from __future__ import annotations

import ipaddress
import json
import os
import posixpath
import re

DOCUMENTATION = r"""
name: counter_settings_problems
short_description: The sentences that say what is wrong with the counter role's settings
description:
  - >-
    Checks the role's variables (a dict of its argument spec's options) and the
    host's facts, and returns one sentence per check that fails, each naming
    the variable, what it must be and what it got. An empty list: nothing wrong.
    The role's preflight asserts it is empty, in one task.
options:
  _input:
    description: The role's variables, name to value.
    type: dict
    required: true
  facts:
    description: The host's ansible_facts (service_mgr, python).
    type: dict
    required: true
  host:
    description: The host's inventory name, for the sentences.
    type: str
    required: true
  system_dirs:
    description: Directories the database may not sit in directly.
    type: list
    required: true
  requirements:
    description: The app's lock on the controller, which must exist.
    type: str
    required: true
"""

_DB_PATH = re.compile(r"^/.+/[^/]+$")
_FILE_PATH = re.compile(r"^/.+[^/]$")


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: object) -> int:
    """As Jinja's int filter: a number, or 0 when it is none."""
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        try:
            return int(float(value))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return 0


def _in_range(value: object, low: int, high: int) -> bool:
    return _is_integer(value) and low <= value <= high  # type: ignore[operator]


def _ip_address(value: object) -> bool:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return True


def _dumps(value: object) -> str:
    return json.dumps(value)


def counter_settings_problems(
    settings: dict, facts: dict, host: str, system_dirs: list, requirements: str
) -> list[str]:
    """One sentence per failed check; empty when the settings and the host are fine."""
    s = settings
    problems = []
    if facts.get("service_mgr") != "systemd":
        problems.append(f"{host} runs {facts.get('service_mgr')}, not systemd.")
    db_path = str(s["counter_db_path"])
    if not (
        _in_range(s["counter_port"], 1, 65535)
        and _in_range(s["counter_threads"], 1, 256)
        and _DB_PATH.match(db_path)
        and posixpath.dirname(db_path) not in system_dirs
        and _is_integer(s["counter_start_timeout"])
        and s["counter_start_timeout"] >= 10
    ):
        problems.append(
            f"counter_port must be 1-65535 (got {s['counter_port']}), counter_threads 1-256 (got"
            f" {s['counter_threads']}), counter_db_path an absolute file path in a directory of its"
            " own"
            f" (its directory is owned by {s['counter_user']}; got {_dumps(s['counter_db_path'])}),"
            f" counter_start_timeout at least 10 seconds (got {s['counter_start_timeout']})."
        )
    if not (
        _in_range(s["counter_connection_limit"], 10, 10000)
        and _in_range(s["counter_idle_timeout"], 1, 3600)
    ):
        problems.append(
            "counter_connection_limit must be 10-10000 (got"
            f" {_dumps(s['counter_connection_limit'])}),"
            f" counter_idle_timeout 1-3600 seconds (got {_dumps(s['counter_idle_timeout'])})."
        )
    # systemd's counter.socket holds the listener: ListenStream= takes an
    # address, not a name (0.0.0.0 and :: listen on every address).
    if not _ip_address(s["counter_listen_host"]):
        problems.append(
            "counter_listen_host must be an IP address (systemd's socket unit listens on it; got"
            f" {_dumps(s['counter_listen_host'])})."
        )
    version = facts.get("python", {}).get("version", {})
    have = (_int(version.get("major")), _int(version.get("minor")))
    if have < (3, 11):
        problems.append(
            f"The app needs Python >= 3.11; {host} has"
            f" {'.'.join(str(version.get(k, '?')) for k in ('major', 'minor', 'micro'))}."
        )
    if not os.path.isfile(requirements):
        problems.append(
            f"No {requirements} on the controller: set counter_app_source to the app's project"
            " directory."
        )
    if not 2 <= _int(s["counter_max_replica_lag"]) <= 3600:
        problems.append(
            "counter_max_replica_lag must be 2-3600 seconds"
            f" (got {_dumps(s['counter_max_replica_lag'])})."
        )
    if not _in_range(s["counter_ack_timeout"], 1, 300):
        problems.append(
            f"counter_ack_timeout must be 1-300 seconds (got {_dumps(s['counter_ack_timeout'])})."
        )
    drill_result = s["counter_restore_drill_result"]
    if not (
        _in_range(s["counter_metrics_port"], 0, 65535)
        and s["counter_metrics_port"] != s["counter_port"]
        and _ip_address(s["counter_metrics_listen_host"])
        and (drill_result == "" or _FILE_PATH.match(str(drill_result)))
    ):
        problems.append(
            "counter_metrics_port must be 0 (none) or 1-65535 and differ from counter_port (got"
            f" {_dumps(s['counter_metrics_port'])}), counter_metrics_listen_host an IP address (got"
            f' {_dumps(s["counter_metrics_listen_host"])}), counter_restore_drill_result "" or an'
            f" absolute file path (got {_dumps(drill_result)})."
        )
    return problems


class FilterModule:
    def filters(self) -> dict:
        return {"counter_settings_problems": counter_settings_problems}
