"""A fleet: every app host counts on its own database, replicates under its
own prefix, and is restored to its own count; changes roll one host at a time."""

from __future__ import annotations

import pytest

from deployment import APP_UNIT, DATA, LITESTREAM, SETTINGS
from hosts import app_name, healthy, host_now, replica_count, run_site, stop_app, visit, wait_until
from stores import replica_objects

pytestmark = pytest.mark.fleet


@pytest.fixture
def fleet(apps):
    assert len(apps) >= 2, (
        "the fleet tests need two app hosts: select them with -m fleet only there"
    )
    return apps[:2]


def test_each_host_counts_on_its_own(fleet):
    first, second = fleet
    a, b = visit(first), visit(second)
    assert [visit(first) for _ in range(3)] == [a + 1, a + 2, a + 3]
    assert visit(second) == b + 1


def test_each_host_replicates_under_its_own_prefix(fleet, storage, replica_kind):
    for host in fleet:
        visit(host)
    for host in fleet:
        objects = wait_until(
            lambda host=host: replica_objects(host, storage),
            timeout=30,
            what=f"objects of {app_name(host)}",
        )
        assert all(o.startswith(app_name(host) + "/") for o in objects), objects


def test_replacing_one_host_restores_its_own_count(fleet):
    first, second = fleet
    for _ in range(5):
        visit(second)
    first_count, second_count = visit(first), visit(second)
    wait_until(lambda: replica_count(second) == second_count, timeout=30, what="replica caught up")
    # The second host loses its data (a new machine); the play converges it.
    stop_app(second)
    second.check_output("rm -rf %s %s %s", DATA, SETTINGS["litestream_config_dir"], LITESTREAM)
    result = run_site({})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert visit(second) == second_count + 1, "restored to ITS count"
    assert visit(first) == first_count + 1, "the other host is untouched"


# Slow (a whole deploy or two): run by `make drills`, kept out of `make test`'s budget.
@pytest.mark.drill
def test_changes_roll_one_host_at_a_time(fleet):
    first, second = fleet
    for host in fleet:  # both serve: the roll is what is checked
        wait_until(lambda host=host: healthy(host), timeout=60, what="healthy")
    since = {host: host_now(host) for host in fleet}
    threads = int(first.check_output("sed -n 's/^COUNTER_THREADS=//p' /etc/counter/counter.env"))
    result = run_site({"counter_threads": threads + 1})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    for host in fleet:
        wait_until(lambda host=host: healthy(host), timeout=60, what="healthy")

    def restart_times(host) -> tuple[float, float]:
        out = host.check_output(
            f"journalctl --no-pager -o short-unix -u {APP_UNIT} --since @%s", since[host]
        )
        stopping = [
            float(line.split()[0]) for line in out.splitlines() if "Stopping counter" in line
        ]
        started = [float(line.split()[0]) for line in out.splitlines() if "Started counter" in line]
        assert stopping and started, out
        return stopping[0], started[-1]

    first_stop, first_started = restart_times(first)
    second_stop, _ = restart_times(second)
    assert first_stop < first_started
    # The second host was not touched before the first was back.
    assert first_started < second_stop, (first_started, second_stop)
    assert run_site({}).returncode == 0
