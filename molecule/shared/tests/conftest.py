"""Fixtures and hooks of the tests a user runs against a deployed lab.

Helpers live in modules beside this file: deployment (the settings, read
through Ansible), hosts (visits, units, playbooks), stores (what a replica
store holds), faults (partitions and load); programs/ holds what runs on the
hosts.

Which tests a scenario runs is declared, not discovered: tests that need one
replica type or two app hosts carry a marker (sftp, s3, fleet, install,
monitoring, drill) and each scenario's molecule.yml selects markers (pytest
-m); a test that skips fails the run, since it would never run anywhere.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from deployment import APP_UNIT, LITESTREAM_UNIT, SETTINGS
from hosts import app_name, get, healthy, hosts, stop_app, wait_until


@pytest.fixture(scope="session")
def apps():
    return hosts("counter_app")


@pytest.fixture(scope="session")
def app(apps):
    return apps[0]


@pytest.fixture(scope="session")
def replica_kind() -> str:
    """The replica type the scenario deploys: sftp or s3."""
    return SETTINGS["replica_type"]


@pytest.fixture(scope="session")
def storage(replica_kind):
    return hosts(f"{replica_kind}_storage")[0]


@pytest.fixture(scope="session")
def store_service(replica_kind) -> str:
    """The unit that serves the replica store on the storage host."""
    return {"sftp": "ssh.service", "s3": "seaweedfs.service"}[replica_kind]


@pytest.fixture(autouse=True)
def serving(apps):
    """Every test starts from the state a user expects after a deploy: each
    app host serving and ready (both units running, replica current),
    whatever the test before it left."""
    for host in apps:
        if get(host, "/healthz")["status"] != 200:
            host.run("systemctl start %s", APP_UNIT)
            wait_until(lambda host=host: healthy(host), 180, f"{app_name(host)} ready")
    return apps


@pytest.fixture
def stopped_app(app, serving):
    """The app stopped as a user stops it (Litestream stops after it)."""
    stop_app(app)
    return app


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """When a test fails, attach what the units of every app host said (as a
    user would look next); nothing is read when it passes."""
    report = yield
    if report.failed and call.when in ("setup", "call"):
        for host in hosts("counter_app"):
            said = host.run(
                "journalctl --no-pager -n 80 -u %s -u %s", LITESTREAM_UNIT, APP_UNIT
            ).stdout
            report.sections.append((f"journal of {app_name(host)}", said))
    return report


# Figures measured by the drills, written where COUNTER_DRILL_FIGURES says
# (make drills renders them as a table).
@pytest.fixture(scope="session")
def figures():
    found: dict[str, Any] = {}
    yield found
    path = os.environ.get("COUNTER_DRILL_FIGURES")
    if path and found:
        scenario = os.environ.get("MOLECULE_SCENARIO_NAME", "?")
        suite = os.environ.get("MOLECULE_SUITE", "bookworm")
        target = Path(path)
        # make drills runs the scenarios at the same time: one writer at a time.
        with open(target, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            text = target.read_text()
            data = json.loads(text) if text.strip() else {}
            data.setdefault(f"{scenario}/{suite}", {}).update(found)
            target.write_text(json.dumps(data, indent=2) + "\n")


def long_drills() -> bool:
    return os.environ.get("COUNTER_DRILLS") == "long"


# Which tests run where is declared: these markers, selected per scenario by
# `-m` in its molecule.yml (verifier options); `drill` only by `make drills`.
MARKERS = {
    "sftp": "needs the SFTP replica (scenario default)",
    "s3": "needs the S3 replica (scenario s3)",
    "fleet": "needs two app hosts (scenario s3)",
    "install": "Litestream install and upgrade drills, once per Debian release (scenario default)",
    "drill": "long: fault drills under load (with figures) and slow deploy cases (make drills)",
    "monitoring": "needs a monitoring host (scenarios default and s3)",
    "once": "store-independent: runs in one scenario (default), for make test's time",
}


def pytest_configure(config) -> None:
    for name, meaning in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {meaning}")


def pytest_collection_modifyitems(config, items) -> None:
    if long_drills():
        return
    drills = [item for item in items if item.get_closest_marker("drill")]
    if drills:
        config.hook.pytest_deselected(items=drills)
        items[:] = [item for item in items if not item.get_closest_marker("drill")]


_SKIPPED: list[str] = []


def pytest_runtest_logreport(report) -> None:
    if report.skipped:
        _SKIPPED.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus) -> None:
    """A skipped test is a test that may run nowhere: fail the run."""
    if _SKIPPED and exitstatus == 0:
        print(f"\nskipped tests (select them by marker instead): {_SKIPPED}", file=sys.stderr)
        session.exitstatus = 1
