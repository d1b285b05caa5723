"""The counter_settings_problems filter: one sentence per wrong setting."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_plugin import PLUGINS, ROLES, load

ROLE = ROLES / "counter"
settings = load(PLUGINS / "filter" / "counter_settings.py")
SYSTEM_DIRS = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["__counter_system_dirs"]
FACTS = {"service_mgr": "systemd", "python": {"version": {"major": 3, "minor": 11, "micro": 2}}}


@pytest.fixture
def lock(tmp_path: Path) -> str:
    path = tmp_path / "requirements.txt"
    path.write_text("bottle==0.13.2\n")
    return str(path)


def problems(lock: str, facts: dict = FACTS, **changed: object) -> list[str]:
    values = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    # As the play resolves it from the Litestream role's publication.
    values["counter_restore_drill_result"] = "/var/lib/litestream-restore-drill/result.json"
    values.update(changed)
    return settings.counter_settings_problems(
        values, facts=facts, host="web1", system_dirs=SYSTEM_DIRS, requirements=lock
    )


def test_the_defaults_pass(lock: str) -> None:
    assert problems(lock) == []


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("counter_port", 70000, "counter_port must be 1-65535 (got 70000)"),
        ("counter_port", "80", "counter_port must be 1-65535 (got 80)"),
        ("counter_threads", 0, "counter_threads 1-256 (got 0)"),
        ("counter_db_path", "counter.db", 'got "counter.db"'),
        ("counter_db_path", "/var/lib/counter.db", 'got "/var/lib/counter.db"'),
        ("counter_start_timeout", 5, "at least 10 seconds (got 5)"),
        ("counter_connection_limit", 5, "counter_connection_limit must be 10-10000 (got 5)"),
        ("counter_idle_timeout", 0, "counter_idle_timeout 1-3600 seconds (got 0)"),
        ("counter_max_replica_lag", 1, "counter_max_replica_lag must be 2-3600 seconds (got 1)"),
        (
            "counter_max_replica_lag",
            "soon",
            'counter_max_replica_lag must be 2-3600 seconds (got "soon")',
        ),
        ("counter_ack_timeout", 0, "counter_ack_timeout must be 1-300 seconds (got 0)"),
        ("counter_metrics_port", 8080, "differ from counter_port (got 8080)"),
        ("counter_metrics_listen_host", "localhost", 'an IP address (got "localhost")'),
        ("counter_listen_host", "localhost", "an IP address (systemd's socket unit"),
        ("counter_restore_drill_result", "result.json", 'absolute file path (got "result.json")'),
    ],
)
def test_each_wrong_setting_is_named_with_what_it_got(
    lock: str, name: str, value: object, says: str
) -> None:
    found = problems(lock, **{name: value})
    assert len(found) == 1, found
    assert says in found[0]


def test_ipv6_metrics_listener_passes(lock: str) -> None:
    assert problems(lock, counter_metrics_listen_host="::1") == []
    assert problems(lock, counter_listen_host="::") == []


def test_every_problem_is_said_at_once(lock: str) -> None:
    assert (
        len(problems(lock, counter_port=0, counter_idle_timeout=0, counter_max_replica_lag=0)) == 3
    )


def test_the_host_is_checked(lock: str) -> None:
    old = {"service_mgr": "sysvinit", "python": {"version": {"major": 3, "minor": 9, "micro": 2}}}
    found = problems(lock, facts=old)
    assert found == [
        "web1 runs sysvinit, not systemd.",
        "The app needs Python >= 3.11; web1 has 3.9.2.",
    ]


def test_a_missing_lock_on_the_controller_is_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere" / "requirements.txt")
    assert problems(missing) == [
        f"No {missing} on the controller: set counter_app_source to the app's project directory."
    ]
