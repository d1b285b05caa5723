"""The monitoring_litestream_targets filter: one scrape target per database."""

from __future__ import annotations

from ansible_plugin import PLUGINS, load

targets = load(PLUGINS / "filter" / "monitoring_targets.py").monitoring_litestream_targets

NOTES = {"name": "notes", "db_path": "/var/lib/notes/notes.db"}


def test_each_database_with_a_listener_is_a_target_of_its_own() -> None:
    hostvars = {
        "app1": {
            "ansible_host": "10.0.0.5",
            "litestream_databases": [
                {**NOTES, "metrics_addr": ":9392"},
                {**NOTES, "name": "wiki"},  # no listener: nothing to scrape
            ],
        },
        "app2": {"litestream_databases": [{**NOTES, "metrics_addr": "0.0.0.0:9393"}]},
        "fd00::7": {},
    }
    assert targets(["app1", "app2", "fd00::7"], hostvars, 9390, "monitor1") == [
        {"address": "10.0.0.5:9390", "labels": {"host": "app1"}},
        {"address": "10.0.0.5:9392", "labels": {"host": "app1", "database": "notes"}},
        {"address": "app2:9390", "labels": {"host": "app2"}},
        {"address": "app2:9393", "labels": {"host": "app2", "database": "notes"}},
        {"address": "[fd00::7]:9390", "labels": {"host": "fd00::7"}},
    ]


def test_a_loopback_listener_is_scraped_from_its_own_host_only() -> None:
    hostvars = {"app1": {"litestream_databases": [{**NOTES, "metrics_addr": "127.0.0.1:9392"}]}}
    on_app1 = targets(["app1"], hostvars, 9390, "app1")
    assert {"address": "127.0.0.1:9392", "labels": {"host": "app1", "database": "notes"}} in on_app1
    assert targets(["app1"], hostvars, 9390, "monitor1") == [
        {"address": "app1:9390", "labels": {"host": "app1"}}
    ]
