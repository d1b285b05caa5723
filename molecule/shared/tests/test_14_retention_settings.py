"""Snapshots and retention: what the role's variables say is what
Litestream runs with, and an incoherent setting is refused before any host
changes."""

from __future__ import annotations

import re

import yaml

from deployment import CONFIG, LITESTREAM_UNIT, SETTINGS
from hosts import recap_changed, run_site, unit_prop, visit

RETENTION = SETTINGS["litestream_retention"]
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def seconds(duration: str) -> float:
    """A Go duration (as written, or as Go prints it: 5m0s) in seconds."""
    parts = re.findall(r"([0-9.]+)(ms|h|m|s)", duration)
    assert parts, duration
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


def test_the_config_holds_the_snapshot_and_retention_settings(app):
    config = yaml.safe_load(app.file(CONFIG).content_string)
    assert config["snapshot"] == {
        "interval": RETENTION["snapshot_interval"],
        "retention": RETENTION["snapshot_retention"],
    }
    assert config["l0-retention"] == RETENTION["l0_retention"]
    assert config["l0-retention-check-interval"] == RETENTION["l0_retention_check_interval"]
    assert config["levels"] == [{"interval": i} for i in RETENTION["compaction_intervals"]]
    # 0.5.17 reads validation: {interval}; a top-level validation-interval
    # would be ignored.
    assert "validation-interval" not in config
    if RETENTION["validation_interval"]:
        assert config["validation"] == {"interval": RETENTION["validation_interval"]}
    else:
        assert "validation" not in config


def test_litestream_runs_with_the_l0_retention(app):
    """Litestream says so as it starts (this run of the unit's log)."""
    invocation = unit_prop(app, LITESTREAM_UNIT, "InvocationID")
    log = app.run(f"journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID={invocation}").stdout
    found = re.search(r'msg="starting L0 retention monitor".* interval=(\S+) retention=(\S+)', log)
    assert found, log[-3000:]
    assert seconds(found[1]) == seconds(RETENTION["l0_retention_check_interval"])
    assert seconds(found[2]) == seconds(RETENTION["l0_retention"])


def test_incoherent_retention_is_refused_before_any_host_changes(app):
    """One case here (each run of site.yml costs time): the preflight's
    other refusals (not a Go duration, a check longer than the L0
    retention, under 1m) work the same way."""
    extra = {"litestream_snapshot_interval": "2h", "litestream_snapshot_retention": "1h"}
    problem = "litestream_snapshot_retention (1h) is shorter than litestream_snapshot_interval (2h)"
    config_before = app.file(CONFIG).sha256sum
    before = visit(app)
    result = run_site(extra)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert problem in " ".join(output.split()), output[-3000:]
    assert set(recap_changed(result.stdout).values()) == {0}, result.stdout[-2000:]
    assert app.file(CONFIG).sha256sum == config_before
    assert visit(app) == before + 1
