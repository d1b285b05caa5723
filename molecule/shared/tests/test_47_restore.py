"""Point-in-time restore and clone (playbooks/restore.yml), as an operator
runs them: bad input refused before any host is touched, a dry run that
shows the plan and changes nothing, a restore to the newest state, to a time
and to a transaction ID, each going on from the restored state; a clone of
one host's replica onto another, the source untouched.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from deployment import APP_UNIT, DB, LITESTREAM_UNIT
from hosts import (
    app_name,
    host_now,
    main_pid,
    recap_changed,
    replica_count,
    run_site,
    visit,
    wait_until,
)

PLAYBOOK = "playbooks/restore.yml"
ASIDE = f"{DB}.aside-*"


def restore(**extra) -> str:
    result = run_site(extra, playbook=PLAYBOOK)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


def result_of(output: str) -> dict:
    """The guard's result, as the playbook shows it last."""
    found = re.findall(r"replica_txid_before\\?\": (\d+)", output)
    assert found, output[-3000:]
    return {"replica_txid_before": int(found[-1])}


def status(host) -> dict:
    return json.loads(host.check_output("litestream-guard status"))


def pids(host) -> tuple[int, int]:
    return main_pid(host, APP_UNIT), main_pid(host, LITESTREAM_UNIT)


def visits(host, n: int) -> int:
    return [visit(host) for _ in range(n)][-1]


def asides(host) -> list[str]:
    return host.run(f"ls -d {ASIDE}").stdout.split()


def remove_asides(host, kept: list[str]) -> None:
    """What the restores of a test moved aside (an operator removes them
    once sure)."""
    for path in set(asides(host)) - set(kept):
        host.check_output("rm -rf %s", path)


HOST = object()  # the app host under test

BAD_INPUT = [
    ({"restore_hosts": "no-such-host", "restore_latest": True}, "no-such-host: not app hosts"),
    ({"restore_hosts": HOST, "restore_timestamp": "2026-11-30 10:00"}, "is not RFC 3339"),
    ({"restore_hosts": HOST, "restore_timestamp": "2026-02-30T10:00:00Z"}, "not a valid date"),
    ({"restore_hosts": HOST, "restore_timestamp": "2999-01-01T00:00:00Z"}, "in the future"),
    ({"restore_hosts": HOST, "restore_txid": "12g"}, "is not a transaction ID"),
    ({"restore_hosts": HOST, "restore_latest": True, "restore_txid": "2"}, "exactly one of"),
    ({"restore_hosts": HOST, "restore_from": HOST, "restore_latest": True}, "other than"),
    ({"restore_hosts": HOST, "restore_latest": "maybe"}, "true or false"),
    ({"restore_hosts": HOST, "restore_latest": True, "restore_dryrun": True}, "restore_dryrun"),
]


def test_bad_input_is_refused_before_any_host_is_touched(app):
    """Each bad request in a run of its own, all at once (they touch no host)."""
    before = pids(app)
    with ThreadPoolExecutor(max_workers=len(BAD_INPUT)) as pool:
        results = list(
            pool.map(
                lambda extra: run_site(
                    {k: app_name(app) if v is HOST else v for k, v in extra.items()},
                    playbook=PLAYBOOK,
                ),
                [extra for extra, _ in BAD_INPUT],
            )
        )
    for (extra, problem), result in zip(BAD_INPUT, results, strict=True):
        output = result.stdout + result.stderr
        assert result.returncode != 0, extra
        assert problem in output and "No host was touched" in output, (extra, output[-3000:])
        assert set(recap_changed(result.stdout)) == {"localhost"}, "no app host was reached"
    assert pids(app) == before


def test_a_limit_that_leaves_out_the_checks_is_refused(app):
    """`--limit web1` (a natural habit) would skip the input checks, which run
    on localhost, and with them the restore: refused, nothing touched."""
    before = pids(app)
    result = run_site(
        {"restore_timestamp": "2026-11-30T10:00:00Z"}, limit=app_name(app), playbook=PLAYBOOK
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "leaves out localhost" in output and "No host was touched" in output, output[-3000:]
    assert pids(app) == before


def test_a_dry_run_shows_the_plan_and_changes_nothing(app):
    before = visit(app)
    running, kept = pids(app), asides(app)
    output = restore(restore_hosts=app_name(app), restore_txid="1", restore_dry_run=True)
    assert "DRY RUN: nothing changes" in output and "files_to_fetch" in output
    assert "0000000000000001.ltx" in output, "the plan names Litestream's files"
    assert pids(app) == running, "no unit was stopped"
    assert asides(app) == kept, "nothing was moved aside"
    assert visit(app) == before + 1


def _time_after(host, seconds: int = 1) -> str:
    """An RFC 3339 time a little after the host's clock (the replica's
    files are stamped by the store, to the second on SFTP)."""
    when = dt.datetime.fromtimestamp(int(host_now(host)) + seconds, dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# The drill against the SFTP store in `make test`; against S3 (the same
# steps, the timestamps as the S3 store keeps them) with the long drills, to
# keep `make test` in its budget.
@pytest.mark.sftp
def test_point_in_time_restore_goes_on_from_the_chosen_state(app):
    point_in_time_drill(app)


@pytest.mark.s3
@pytest.mark.drill
def test_point_in_time_restore_on_s3(app):
    point_in_time_drill(app)


def point_in_time_drill(app) -> None:
    kept_before = asides(app)
    n = visits(app, 3)
    wait_until(lambda: replica_count(app) == n, 30, "the replica holds the first visits")
    moment = _time_after(app)
    time.sleep(2.5)
    m = visits(app, 2) - n

    # The newest state: nothing acknowledged is lost.
    restore(restore_hosts=app_name(app), restore_latest=True)
    assert visit(app) == n + m + 1
    after_latest = asides(app)

    # Back to the moment: the visits after it are gone from the app, and the
    # replica goes on from there; the live file is kept aside.
    output = restore(restore_hosts=app_name(app), restore_timestamp=moment)
    before_it = result_of(output)["replica_txid_before"]
    assert visit(app) == n + 1
    wait_until(lambda: replica_count(app) == n + 1, 30, "the replica goes on from the restore")
    (aside,) = set(asides(app)) - set(kept_before) - set(after_latest)
    assert app.file(f"{aside}/{Path(DB).name}").exists, "the live file is kept aside"

    # Undone by TXID: the state before that restore is still in the replica.
    restore(restore_hosts=app_name(app), restore_txid=f"{before_it:x}")
    assert visit(app) == n + m + 2
    assert status(app)["replica_txid"] > before_it
    remove_asides(app, kept_before)


@pytest.mark.fleet
def test_clone_copies_one_hosts_replica_onto_another_and_leaves_it_alone(apps):
    source, target = apps[0], apps[1]
    a = visits(source, 2)
    if visit(target) == a + 1:
        a = visit(source)
    wait_until(lambda: replica_count(source) == a, 30, "the source's replica holds its visits")
    source_running, source_replica = pids(source), status(source)["replica_txid"]
    kept = asides(target)
    target_replica = status(target)["replica_txid"]

    restore(restore_hosts=app_name(target), restore_from=app_name(source), restore_latest=True)

    assert visit(target) == a + 1, "the target counts on from the source's state"
    wait_until(lambda: replica_count(target) == a + 1, 30, "the target's replica goes on")
    assert status(target)["replica_txid"] > target_replica, "its own replica moved forward"
    assert pids(source) == source_running, "the source's units were not touched"
    # Its replica holds what it held (Litestream's own housekeeping after a
    # checkpoint may add a transaction of its own meanwhile).
    assert replica_count(source) == a
    assert status(source)["replica_txid"] >= source_replica
    assert visit(source) == a + 1
    for host in (source, target):
        assert host.run("ls /var/tmp/restore-clone-*").rc != 0, "no copy left behind"
    remove_asides(target, kept)
