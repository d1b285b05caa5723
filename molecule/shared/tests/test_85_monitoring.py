"""The monitoring host: Prometheus and Alertmanager run, every app host's
metrics (the app's, Litestream's and the guard's) are scraped, the project's alert rules
are loaded, no replication alert fires on a healthy host and Alertmanager
gets what fires (the always-on Watchdog)."""

from __future__ import annotations

import time

import pytest
import yaml

from deployment import PROJECT
from hosts import app_name, hosts
from hosts import monitoring_api as api

pytestmark = pytest.mark.monitoring

RULES = PROJECT / "roles" / "monitoring" / "files" / "rules"


@pytest.fixture(scope="module")
def monitor():
    return hosts("monitoring")[0]


def test_prometheus_and_alertmanager_run(monitor):
    for unit in ("prometheus", "prometheus-alertmanager"):
        service = monitor.service(unit)
        if not service.is_running:
            print(monitor.check_output("journalctl -u %s --no-pager -n 50", unit))
        assert service.is_running, unit
        assert service.is_enabled, unit


def test_every_app_host_is_scraped(monitor, apps):
    jobs = ("counter", "litestream", "litestream-guard")
    wanted = {(job, app_name(app)) for job in jobs for app in apps}
    health: dict = {}
    for _ in range(60):  # the first scrapes after a start
        found = api(monitor, "prometheus", "/api/v1/targets?state=active")
        targets = found["data"]["activeTargets"]
        health = {
            (t["labels"]["job"], t["labels"].get("host")): (t["health"], t["lastError"])
            for t in targets
        }
        if all(health.get(key, ("",))[0] == "up" for key in wanted):
            break
        time.sleep(1)
    assert {key: health.get(key) for key in wanted} == {key: ("up", "") for key in wanted}


def test_the_project_rules_are_loaded(monitor):
    shipped = {
        rule["alert"]
        for path in RULES.glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    groups = api(monitor, "prometheus", "/api/v1/rules")["data"]["groups"]
    loaded = {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}
    assert shipped <= loaded.keys()
    assert {name: loaded[name] for name in shipped} == dict.fromkeys(shipped, "ok")


# What must be quiet on a healthy host. (Earlier tests break the store and the
# replica on purpose: sync errors and a failed restore drill may still show.)
QUIET = ("CounterReplicationBehind", "LitestreamDown", "CounterMetricsDown")


def test_a_healthy_host_raises_no_replication_alert(monitor, apps):
    query = "/api/v1/query?query=counter_replication_ready"
    ready: dict = {}
    for _ in range(30):
        result = api(monitor, "prometheus", query)["data"]["result"]
        ready = {r["metric"]["host"]: r["value"][1] for r in result}
        if len(ready) == len(apps):
            break
        time.sleep(1)
    assert ready == {app_name(app): "1" for app in apps}
    alerts = api(monitor, "prometheus", "/api/v1/alerts")["data"]["alerts"]
    raised = [a["labels"] for a in alerts if a["labels"]["alertname"] in QUIET]
    assert not raised
    received: list = []
    for _ in range(30):  # Prometheus sends what fires every minute at most
        received = api(monitor, "prometheus-alertmanager", "/api/v2/alerts")
        if any(a["labels"]["alertname"] == "Watchdog" for a in received):
            break
        time.sleep(2)
    assert "Watchdog" in [a["labels"]["alertname"] for a in received]
