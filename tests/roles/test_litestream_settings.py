"""The litestream_settings_problems and litestream_replica_problems filters:
one sentence per wrong setting, never a secret."""

from __future__ import annotations

import jinja2
import pytest
import yaml

from ansible_plugin import PLUGINS, ROLES, load

ROLE = ROLES / "litestream"
settings = load(PLUGINS / "filter" / "litestream_settings.py")
RAW_DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
# Defaults that follow litestream_app_waits_for_sync, rendered as Ansible would.
PRESET = ("l0_retention", "l0_retention_check_interval", "compaction_intervals")


def rendered_defaults(**changed) -> dict:
    """The role's defaults with those PRESET rendered as Ansible renders them."""
    values = {**RAW_DEFAULTS, **changed}
    env = jinja2.Environment(autoescape=True)  # expressions only: nothing is escaped
    env.filters["bool"] = settings._bool  # Ansible's: "false" is false
    for name in PRESET:
        expression = RAW_DEFAULTS["litestream_" + name].strip()[2:-2]  # inside {{ }}
        values["litestream_" + name] = env.compile_expression(expression)(**values)
    return values


DEFAULTS = rendered_defaults()
FACTS = {"service_mgr": "systemd", "architecture": "x86_64"}
PINS = {
    "arch": "x86_64",
    "release_arch": "x86_64",
    "binary": "a" * 64,
    "pypi": "b" * 64,
    "release": "c" * 64,
}
HOST_KEY = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY="
SFTP = {
    "type": "sftp",
    "host": "storage:22",
    "user": "litestream-web1",
    "host-key": HOST_KEY,
    "path": "db",
}


def problems(
    facts: dict = FACTS, pins: dict = PINS, calendar_error: str | None = None, **changed
) -> list[str]:
    values = {**DEFAULTS, "litestream_db_path": "/var/lib/counter/counter.db", **changed}
    return settings.litestream_settings_problems(
        values, facts=facts, host="web1", pins=pins, calendar_error=calendar_error
    )


def replica_problems(replica: object, ca: str = "") -> list[str]:
    return settings.litestream_replica_problems(
        {"litestream_replica": replica, "litestream_ca_certificate": ca}, host="web1"
    )


def test_the_defaults_pass() -> None:
    assert problems() == []
    assert [DEFAULTS["litestream_" + name] for name in PRESET] == [
        "5m",
        "15s",
        ["30s", "5m", "1h"],
    ]


def test_an_app_that_waits_for_sync_keeps_level_0_short_and_passes() -> None:
    waits = rendered_defaults(litestream_app_waits_for_sync=True)
    assert [waits["litestream_" + name] for name in PRESET] == ["1s", "1s", ["10s", "5m", "1h"]]
    assert problems(**waits) == []
    given_as_text = rendered_defaults(litestream_app_waits_for_sync="false")
    assert [given_as_text["litestream_" + name] for name in PRESET] == [
        "5m",
        "15s",
        ["30s", "5m", "1h"],
    ]


def test_the_levels_are_written_as_litestream_reads_them_or_not_at_all() -> None:
    assert settings.litestream_levels(["10s", "5m", "1h"]) == [
        {"interval": "10s"},
        {"interval": "5m"},
        {"interval": "1h"},
    ]
    for wrong in (["30s", "5m"], "30s", ["30s", "5m", "1h", "2h"], ["5m", "30s", "1h"]):
        with pytest.raises(ValueError, match="litestream_compaction_intervals must"):
            settings.litestream_levels(wrong)


@pytest.mark.parametrize(
    ("changed", "says"),
    [
        (
            {"litestream_db_path": "counter.db"},
            'litestream_db_path must be an absolute file path, got "counter.db".',
        ),
        (
            {"litestream_bound_unit": "myapp"},
            "litestream_bound_unit must name the app's service unit, NAME.service (its drop-in"
            ' NAME.service.d/litestream.conf ties it to Litestream), or be empty; got "myapp".',
        ),
        ({"litestream_restart_sec": 0}, "litestream_restart_sec must be 0.1-60 seconds (got 0)"),
        ({"litestream_restart_max_sec": 601}, "litestream_restart_max_sec 1-600 (got 601)"),
        (
            {"litestream_monitor_interval": "20ms"},
            "litestream_monitor_interval must be a duration in ms or s from 50ms to 10s, e.g. 250ms"
            ' (got "20ms")',
        ),
        ({"litestream_monitor_interval": "1m"}, 'e.g. 250ms (got "1m")'),
        (
            {"litestream_replica_check_interval_sec": 2},
            "litestream_replica_check_interval_sec must be a number of seconds from 5 to 3600 (got"
            " 2)",
        ),
        (
            {"litestream_restore_drill_timeout": 5},
            "litestream_restore_drill_timeout 30 to 86400 (got 5)",
        ),
        (
            {"litestream_restore_drill_probe": "DELETE FROM visits"},
            'litestream_restore_drill_probe "" or one SELECT (got "DELETE FROM visits")',
        ),
        (
            {"litestream_restore_drill_heartbeat_url": "ftp://x"},
            'or an http(s) URL (got "ftp://x")',
        ),
        (
            {"litestream_metrics_addr": "0.0.0.0:9090"},
            'litestream_metrics_addr must be "" (off) or HOST:PORT (got "0.0.0.0:9090"), on'
            " loopback",
        ),
        ({"litestream_metrics_addr": "127.0.0.1:99999"}, 'HOST:PORT (got "127.0.0.1:99999")'),
        (
            {"litestream_heartbeat_interval": "30s"},
            'litestream_heartbeat_interval a duration in s, m or h of at least 1m (got "30s")',
        ),
        (
            {"litestream_heartbeat_url": "http://a b"},
            'litestream_heartbeat_url must be "" or an http(s) URL without spaces (got "http://a'
            ' b")',
        ),
        (
            {"litestream_snapshot_interval": "1d"},
            "litestream_snapshot_interval must be a Go duration greater than 0 such as 30s, 10m,"
            ' 24h or 1h30m (units h, m, s, ms; no days), got "1d". Litestream would not start with'
            " it.",
        ),
        ({"litestream_validation_interval": "soon"}, 'got "soon"; empty turns validation off.'),
        (
            {"litestream_snapshot_interval": "30s"},
            "litestream_snapshot_interval must be at least 1m (got 30s)",
        ),
        (
            {"litestream_snapshot_interval": "2h", "litestream_snapshot_retention": "1h"},
            "litestream_snapshot_retention (1h) is shorter than litestream_snapshot_interval (2h)",
        ),
        (
            {"litestream_l0_retention": "1m", "litestream_l0_retention_check_interval": "1h30m"},
            "litestream_l0_retention_check_interval (1h30m) is longer than litestream_l0_retention"
            " (1m)",
        ),
        (
            {"litestream_compaction_intervals": ["30s", "5m"]},
            "litestream_compaction_intervals must be three Go durations greater than 0, levels 1,"
            ' 2 and 3, such as [30s, 5m, 1h], got ["30s", "5m"].',
        ),
        (
            {"litestream_compaction_intervals": ["30s", "5d", "1h"]},
            "must be three Go durations greater than 0, levels 1, 2 and 3, such as [30s, 5m, 1h],"
            ' got ["30s", "5d", "1h"].',
        ),
        (
            {"litestream_compaction_intervals": "30s"},
            'such as [30s, 5m, 1h], got "30s".',
        ),
        (
            {"litestream_compaction_intervals": ["5m", "30s", "1h"]},
            "litestream_compaction_intervals must grow from level 1 to level 3 (each level"
            ' compacts the one below it), got ["5m", "30s", "1h"].',
        ),
        (
            {"litestream_validation_interval": "30s"},
            "litestream_validation_interval must be empty (off) or at least 1m (got 30s)",
        ),
    ],
)
def test_each_wrong_setting_is_named_with_what_it_got(changed: dict, says: str) -> None:
    found = problems(**changed)
    assert len(found) == 1, found
    assert says in found[0], found


def test_exposing_the_metrics_listener_is_allowed_when_asked() -> None:
    assert problems(litestream_metrics_addr="0.0.0.0:9090", litestream_metrics_expose=True) == []
    assert problems(litestream_metrics_addr="[::1]:9090") == []


@pytest.mark.parametrize(
    ("addr", "says"),
    [
        ("9389", 'litestream_guard_metrics_addr must be "" (off), HOST:PORT or :PORT (got "9389")'),
        (":0", "litestream_guard_metrics_addr must be"),
        ("127.0.0.1:9390", "share a port"),
    ],
)
def test_the_guards_metrics_listener_is_checked(addr: str, says: str) -> None:
    assert any(says in p for p in problems(litestream_guard_metrics_addr=addr))
    assert problems(litestream_guard_metrics_addr=":9389") == []
    assert problems(litestream_guard_metrics_addr="") == []


def test_the_host_and_the_pins_are_checked() -> None:
    found = problems(facts={"service_mgr": "sysvinit", "architecture": "sparc"}, pins={"arch": ""})
    assert found[0] == "web1 runs sysvinit, not systemd: this role manages systemd units."
    assert found[1].startswith("No pinned sha256 of the Litestream ")
    assert "for architecture sparc" in found[1]
    assert 'litestream_binary_sha256["' in found[1] and "].ARCH" in found[1]


def test_a_schedule_systemd_refuses_is_named_with_what_it_said() -> None:
    found = problems(
        litestream_restore_drill_schedule="nightly", calendar_error="Failed to parse\n"
    )
    assert found == [
        "litestream_restore_drill_schedule must be a systemd OnCalendar= expression such as daily"
        " or"
        ' "*-*-* 03:00:00" (got "nightly"): Failed to parse'
    ]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("", 0), ("30s", 30), ("1h30m", 5400), ("250ms", 0.25), ("1d", -1), ("10", -1), ("h", -1)],
)
def test_go_durations(value: str, seconds: float) -> None:
    assert settings.go_duration_seconds(value) == seconds


def test_a_good_sftp_replica_passes() -> None:
    assert replica_problems(SFTP) == []


@pytest.mark.parametrize(
    ("replica", "says"),
    [
        (
            {"type": "nfs", "path": "db"},
            "litestream_replica must be one replica in Litestream's configuration shape, with a"
            " type (sftp, s3 or file) and a path, e.g. {type: s3, bucket: my-bucket, path: web1/db}"
            ' (got type="nfs", path="db").',
        ),
        ("sftp", '(got type="", path="")'),
        (dict(SFTP, host="storage"), 'got host="storage", user="litestream-web1"'),
        (
            dict(SFTP, **{"host-key": "AAAA"}),
            'The sftp replica needs host ("name:port", as Litestream dials it), user, and the'
            " server's host key to pin",
        ),
        (
            {"type": "s3", "bucket": "B", "path": "db"},
            'The s3 replica needs a valid bucket (got "B")',
        ),
        (
            {"type": "s3", "bucket": "backups", "path": "db", "endpoint": "storage:9000"},
            'or none for AWS (got "storage:9000")',
        ),
        (
            {"type": "file", "path": "replica"},
            'The file replica\'s path must be an absolute directory (got "replica").',
        ),
    ],
)
def test_each_wrong_replica_setting_is_named(replica: object, says: str) -> None:
    found = replica_problems(replica)
    assert len(found) == 1, found
    assert says in found[0], found


@pytest.mark.parametrize(
    "keys",
    [
        {"access-key-id": "AKIA0123456789", "secret-access-key": "short"},
        {"access-key-id": "AKIA0123456789"},
        {"access-key-id": "a key", "secret-access-key": "s3cr3t/s3cr3t+s3cr3t="},
    ],
)
def test_wrong_s3_keys_are_refused_without_quoting_them(keys: dict) -> None:
    found = replica_problems({"type": "s3", "bucket": "backups", "path": "db", **keys})
    assert len(found) == 1 and "Keys not shown here." in found[0]
    for secret in keys.values():
        assert secret not in found[0]


def test_good_s3_keys_pass() -> None:
    replica = {
        "type": "s3",
        "bucket": "backups",
        "path": "db",
        "endpoint": "https://storage:8333",
        "access-key-id": "AKIA0123456789",
        "secret-access-key": "s3cr3t/s3cr3t+s3cr3t=",
    }
    assert replica_problems(replica) == []


def test_the_ca_certificate_must_be_pem() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    assert replica_problems(SFTP, ca=pem) == []
    found = replica_problems(SFTP, ca="not a certificate")
    assert found == [
        "litestream_ca_certificate must be a CA certificate in PEM (-----BEGIN CERTIFICATE----- ..."
        ' -----END CERTIFICATE-----) or empty (got "not a certificate").'
    ]


# litestream_databases: the host's other databases.
NOTES = {"name": "notes", "db_path": "/var/lib/notes/notes.db", "replica": SFTP}


def db_problems(databases: object) -> list[str]:
    return settings.litestream_databases_problems(
        databases,
        first_path="/var/lib/counter/counter.db",
        first_metrics_addr="127.0.0.1:9390",
        guard_metrics_addr="127.0.0.1:9389",
    )


def test_other_databases_pass_when_each_is_its_own() -> None:
    wiki = {
        **NOTES,
        "name": "wiki",
        "db_path": "/var/lib/wiki/wiki.db",
        "metrics_addr": "127.0.0.1:9392",
    }
    assert db_problems([]) == []
    assert db_problems([NOTES, wiki]) == []


@pytest.mark.parametrize(
    ("databases", "says"),
    [
        ({"name": "notes"}, "litestream_databases must be a list"),
        (["notes"], "must be a dict"),
        ([{**NOTES, "name": "Notes-1"}], "name must be 1-32 of a-z, 0-9 and _"),
        ([NOTES, {**NOTES, "db_path": "/var/lib/x/x.db"}], "the name notes is given twice"),
        ([{**NOTES, "name": "staged"}], "the name staged is taken"),
        (
            [{**NOTES, "db_path": "/var/lib/counter/counter.db"}],
            "is replicated by another database",
        ),
        ([{**NOTES, "db_path": "notes.db"}], "db_path must be the database file's absolute path"),
        ([{**NOTES, "replica": {}}], "replica must be the database's replica"),
        ([{**NOTES, "metrics_addr": "0.0.0.0:9390"}], "metrics port 9390 is another database's"),
        ([{**NOTES, "metrics_addr": ":9389"}], "or the guard's)"),
        ([{**NOTES, "db_paht": "/x"}], "unknown keys db_paht"),
    ],
)
def test_other_databases_that_clash_or_are_incomplete_are_refused(
    databases: object, says: str
) -> None:
    assert any(says in problem for problem in db_problems(databases)), db_problems(databases)


def test_each_bound_app_has_its_own_drop_in() -> None:
    databases = [
        {**NOTES, "bound_unit": "notes.service"},
        {**NOTES, "name": "wiki", "bound_unit": ""},
    ]
    assert settings.litestream_bound_drop_ins(databases, first_unit="counter.service") == [
        "/etc/systemd/system/counter.service.d/litestream.conf",
        "/etc/systemd/system/notes.service.d/litestream-notes.conf",
    ]
    assert settings.litestream_bound_drop_ins([], first_unit="") == []


def test_every_databases_litestream_unit():
    databases = [{"name": "notes", "db_path": "/var/lib/notes/notes.db"}, {"name": "wiki"}]
    assert settings.litestream_units(databases) == [
        "litestream.service",
        "litestream@notes.service",
        "litestream@wiki.service",
    ]
    assert settings.litestream_units(None) == ["litestream.service"]


def test_a_database_dropped_from_the_list_is_refused_until_named_as_removed():
    dropped = settings.litestream_dropped_problems(["notes", "wiki"], [NOTES], [], host="app1")
    assert len(dropped) == 1
    assert dropped[0].startswith(
        "app1 runs litestream@wiki.service for a database litestream_databases no longer lists"
    )
    assert "litestream_databases_removed" in dropped[0]
    assert settings.litestream_dropped_problems(["notes", "wiki"], [NOTES], ["wiki"]) == []
    assert settings.litestream_dropped_problems([], [], ["gone"]) == [], "removed already: fine"
    both = settings.litestream_dropped_problems(["notes"], [NOTES], ["notes"])
    assert both == [
        "notes: named in litestream_databases and litestream_databases_removed at once: keep one."
    ]
    assert "must be a list of names" in settings.litestream_dropped_problems([], [], "notes")[0]
