"""The host firewall: each port the roles open answers only whom it serves.
The app's port answers everyone; the metrics ports (the app's, Litestream's,
which also serves Go's pprof, and the guard's) answer the scrapers (the
monitoring group) only; the S3 gateway's gRPC port no other host. The
refusals are the firewall's (without its rules the same ports answer), and
its rules come back when the host's own nftables.service flushes the
ruleset."""

from __future__ import annotations

import errno
import json

import pytest

import programs
from deployment import GUARD_METRICS_PORT, LITESTREAM_METRICS_PORT, METRICS_PORT, PORT, STORE
from faults import docker
from hosts import app_name, healthy, hosts, http_get, wait_until

OPEN, REFUSED = 0, errno.ECONNREFUSED
APP_TABLES = ("inet counter_ports", "inet litestream_ports", "inet litestream_guard_metrics_ports")
APP_RULES = (
    "host-firewall@counter.service",
    "host-firewall@litestream.service",
    "host-firewall@litestream_guard_metrics.service",
)
SCRAPED = [METRICS_PORT, LITESTREAM_METRICS_PORT, GUARD_METRICS_PORT]
CLOSED = dict.fromkeys(SCRAPED, REFUSED)


def connects(source, target, ports: list[int]) -> dict[int, int]:
    """From a host, which ports of another answer: port -> errno (0: open)."""
    found = source.check_output(
        "python3 -c %s %s %s", programs.text("connect.py"), app_name(target), json.dumps(ports)
    )
    return {int(port): code for port, code in json.loads(found).items()}


def test_the_metrics_ports_refuse_a_host_that_is_not_a_scraper(apps, storage):
    for app in apps:
        found = connects(storage, app, [PORT, *SCRAPED])
        assert found == {PORT: OPEN, **CLOSED}, app_name(app)


def test_the_refusal_is_the_firewalls(app, storage):
    """The listeners are beyond loopback: without the rules they answer."""
    try:
        app.check_output("systemctl stop %s %s %s", *APP_RULES)
        assert not any(table in app.check_output("nft list tables") for table in APP_TABLES)
        found = connects(storage, app, SCRAPED)
        assert found == dict.fromkeys(SCRAPED, OPEN)
    finally:
        app.check_output("systemctl start %s %s %s", *APP_RULES)
    found = connects(storage, app, SCRAPED)
    assert found == CLOSED


@pytest.mark.monitoring
@pytest.mark.fleet
def test_the_metrics_ports_and_pprof_answer_the_scraper(apps):
    monitor = hosts("monitoring")[0]
    scraped = [app for app in apps if app_name(app) != app_name(monitor)]
    assert scraped, "a monitoring host that is not the app host"
    for app in scraped:
        found = connects(monitor, app, [PORT, *SCRAPED])
        assert found == dict.fromkeys([PORT, *SCRAPED], OPEN), app_name(app)
        pprof = http_get(monitor, f"http://{app_name(app)}:{LITESTREAM_METRICS_PORT}/debug/pprof/")
        assert pprof["status"] == 200, pprof


def test_the_rules_come_back_after_the_hosts_own_nftables_flushes_them(app, storage):
    """Debian's nftables.service starts and reloads with `flush ruleset`:
    each role's rules are loaded again in the same job (the drop-in
    nftables.service.d/host-firewall.conf), back when systemctl returns.
    The flush also drops the rules Docker gives a lab host for its DNS, so
    the host is restarted after (Docker sets them at its start)."""
    try:
        for action in ("restart", "reload"):
            app.check_output("systemctl %s nftables.service", action)
            tables = app.check_output("nft list tables")
            assert all(table in tables for table in APP_TABLES), (action, tables)
            found = connects(storage, app, [PORT, *SCRAPED])
            assert found == {PORT: OPEN, **CLOSED}, action
    finally:
        docker("restart", "--time", "60", app_name(app))
        wait_until(lambda: healthy(app), 180, f"{app_name(app)} ready after its restart")
    # At boot too, before the network (network-pre.target).
    tables = app.check_output("nft list tables")
    assert all(table in tables for table in APP_TABLES), tables


@pytest.mark.s3
def test_the_s3_port_answers_its_clients_and_the_grpc_port_no_other_host(apps, storage):
    s3_port = int(STORE["s3_port"])
    for app in apps:
        found = connects(app, storage, [s3_port, s3_port + 10000])
        assert found == {s3_port: OPEN, s3_port + 10000: REFUSED}, app_name(app)
