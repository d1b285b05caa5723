"""Guarantees under faults: the replica is never rolled back, a damaged or
unreachable replica never yields an empty database, replication stays on and
readiness says when it is not, and the app comes back after any exit but a
stop. Each test replays a fault as an operator (or a VM platform) causes it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deployment import APP_SOCKET, APP_UNIT, DATA, DB, LITESTREAM_UNIT
from faults import StorePaused, unavailable_seconds
from hosts import (
    db_count,
    get,
    healthy,
    host_now,
    journal,
    main_pid,
    remove_database,
    replica_count,
    run_site,
    start_until_said,
    stop_app,
    unit_state,
    visit,
    wait_until,
)
from stores import damage_replica_objects, delete_replica_objects, replica_objects

COPY = "/var/tmp/rolled-back-copy"  # noqa: S108 - on a test host


def _roll_back(app) -> tuple[int, int]:
    """What a VM snapshot revert does to the data directory: returns (count
    of the old copy, last acknowledged count)."""
    old = visit(app)
    stop_app(app)
    app.check_output("rm -rf %s && cp -a %s %s", COPY, DATA, COPY)
    app.check_output(f"systemctl start {APP_UNIT}")
    wait_until(lambda: healthy(app), timeout=60, what="healthy")
    acked = [visit(app) for _ in range(20)][-1]
    stop_app(app)
    assert replica_count(app) == acked
    app.check_output("rm -rf %s && cp -a %s %s && rm -rf %s", DATA, COPY, DATA, COPY)
    message = start_until_said(
        app, "REFUSED", timeout=60, what="the guard refuses the rolled-back file"
    )
    assert "is at TXID" in message and "Starting would roll the replica back" in message, message
    # Not even a listener keeps clients waiting: the guard closed the app's socket.
    wait_until(
        lambda: unit_state(app, APP_SOCKET) == "inactive", timeout=15, what="the listener closed"
    )
    answer = get(app, "/")
    assert answer["status"] == 0 and "refused" in answer["body"], "nothing serves the old file"
    assert replica_count(app) == acked, "the replica is not rolled back"
    return old, acked


def test_rolled_back_file_is_refused_and_restored_from_the_replica(app):
    _, acked = _roll_back(app)
    out = app.check_output("litestream-guard restore-from-replica")
    aside = re.search(r"kept in (\S+)", out).group(1)
    wait_until(lambda: healthy(app), timeout=60, what="healthy after the restore")
    assert visit(app) == acked + 1, "no acknowledged visit is lost"
    assert app.file(f"{aside}/{Path(DB).name}").exists, "the local file is kept aside"
    app.check_output("rm -rf %s", aside)


def test_adopting_the_rolled_back_file_keeps_the_replicas_state_aside(app):
    old, acked = _roll_back(app)
    out = app.check_output("litestream-guard adopt-local")
    saved = re.search(r"saved as (\S+\.db)", out).group(1)
    wait_until(lambda: healthy(app), timeout=60, what="healthy after adopting")
    count = visit(app)
    assert count == old + 1, "the local file goes on"
    kept = db_count(app, saved)
    assert int(kept) == acked, "every acknowledged visit is kept in the saved replica state"
    wait_until(lambda: replica_count(app) == count, timeout=30, what="the replica goes on")
    app.check_output("rm -rf %s", saved.rsplit("/", 1)[0])


def test_damaged_replica_fails_closed(app, storage, replica_kind):
    visit(app)
    stop_app(app)
    deleted = delete_replica_objects(app, storage, replica_kind, "0000000000000001-")
    assert deleted, "the snapshot files starting at TXID 1 were there"
    remove_database(app)
    try:
        said = start_until_said(
            app, "not starting on an empty", timeout=90, what="two refused restores", times=2
        )
        assert "no restorable backup" in said or "Restore failed" in said, said
        assert get(app, "/")["status"] == 0, "the app must not start on an empty database"
        assert not app.file(DB).exists
    finally:
        _give_the_replica_up(app, storage, replica_kind)


# The plan's snapshot (level 9, from TXID 1) in either store's layout.
SNAPSHOT = "/(ltx/9|0009)/0000000000000001-"


@pytest.mark.parametrize("how", ["truncate", pytest.param("flip", marks=pytest.mark.drill)])
def test_a_damaged_file_of_the_plan_is_fetched_then_refused(app, storage, replica_kind, how):
    """The guard fetches the plan's files itself (staging): a file cut short
    or with a flipped byte in the store is staged as it is, then refused by
    Litestream's checksums; nothing serves, nothing is left behind."""
    visit(app)
    # A history begun by the test before holds its snapshot once Litestream
    # has written it (not at once after its start).
    wait_until(
        lambda: any(re.search(SNAPSHOT, name) for name in replica_objects(app, storage)),
        timeout=60,
        what="the plan's snapshot in the store",
        interval=1,
    )
    stop_app(app)
    damaged = damage_replica_objects(app, storage, replica_kind, SNAPSHOT, how)
    assert damaged, "the snapshot was there"
    remove_database(app)
    since = host_now(app)
    try:
        said = start_until_said(
            app, "not starting on an empty", timeout=90, what="a refused restore"
        )
        assert "Restore failed" in said, said
        assert "fetched the plan's" in journal(app, since, LITESTREAM_UNIT), "through the stage"
        assert get(app, "/")["status"] == 0, "the app must not start on an empty database"
        assert app.check_output("ls -A %s", DATA) == "", "no .tmp, no stage left behind"
    finally:
        _give_the_replica_up(app, storage, replica_kind)


def test_the_app_comes_back_after_any_exit_but_a_stop(app, figures):
    replicating = main_pid(app, LITESTREAM_UNIT)
    for how, action in (
        ("SIGTERM", f"systemctl kill {APP_UNIT}"),
        ("SIGKILL", f"systemctl kill -s KILL {APP_UNIT}"),
    ):
        before = visit(app)
        down = unavailable_seconds(app, action)
        assert down <= 5, f"{how}: {down:.1f} s without an answer"
        figures[f"app {how} from outside: s until serving"] = round(down, 1)
        assert visit(app) == before + 1
    assert main_pid(app, LITESTREAM_UNIT) == replicating, "Litestream was not touched"
    stop_app(app)
    assert unit_state(app, APP_UNIT) == "inactive", "a stop is for good"
    app.check_output(f"systemctl start {APP_UNIT}")
    wait_until(lambda: healthy(app), timeout=60, what="healthy")


def test_replication_stays_on_and_readiness_tells_the_truth(app, figures):
    app_pid = main_pid(app, APP_UNIT)
    for how, action in (
        ("stopped", f"systemctl stop {LITESTREAM_UNIT}"),
        ("killed", f"systemctl kill -s KILL {LITESTREAM_UNIT}"),
    ):
        old = main_pid(app, LITESTREAM_UNIT)
        app.check_output(action)
        started = app.check_output("date +%s.%N")
        new = wait_until(
            lambda old=old: (
                unit_state(app, LITESTREAM_UNIT) == "active"
                and main_pid(app, LITESTREAM_UNIT) not in (0, old)
                and main_pid(app, LITESTREAM_UNIT)
            ),
            timeout=10,
            what=f"Litestream {how} by hand is back within 10 s",
            interval=0.2,
        )
        back = float(app.check_output("date +%s.%N")) - float(started)
        figures[f"Litestream {how}: s until running again"] = round(back, 1)
        assert new
    # No start limit to sit in: killed again and again, it still comes back.
    for _ in range(6):
        app.check_output(f"systemctl kill -s KILL {LITESTREAM_UNIT}")
        wait_until(
            lambda: unit_state(app, LITESTREAM_UNIT) == "active",
            timeout=10,
            what="back",
            interval=0.2,
        )
    assert main_pid(app, APP_UNIT) == app_pid, "the app was not restarted"
    # The replica current again after the kills: then a hang is what readiness sees.
    wait_until(lambda: healthy(app), timeout=60, what="ready after the kills", interval=0.5)
    # Litestream hung (SIGSTOP): readiness goes red and says why; liveness
    # stays green; it recovers by itself.
    app.check_output(f"systemctl kill -s STOP {LITESTREAM_UNIT}")
    try:
        answer = wait_until(
            lambda: (a := get(app, "/healthz"))["status"] == 503 and a,
            timeout=10,
            what="readiness red",
            interval=0.5,
        )
        assert answer["body"].startswith("replication down"), answer
        assert get(app, "/livez")["status"] == 200
        assert get(app, "/")["status"] == 200, "the app keeps serving"
    finally:
        app.check_output(f"systemctl kill -s CONT {LITESTREAM_UNIT}")
    wait_until(lambda: healthy(app), timeout=30, what="ready again")


# A whole deploy: in `make drills`, for make test's time.
@pytest.mark.drill
def test_a_deploy_leaves_the_units_it_finds_stopped_running(app):
    stop_app(app)
    result = run_site({})
    assert result.returncode == 0, result.stdout[-3000:]
    assert unit_state(app, LITESTREAM_UNIT) == "active"
    assert unit_state(app, APP_UNIT) == "active"
    wait_until(lambda: healthy(app), timeout=30, what="ready again")


def test_a_store_outage_is_not_an_app_outage(app, storage, figures):
    visit(app)
    with StorePaused(storage):
        counts = [visit(app) for _ in range(3)]
        down = unavailable_seconds(app, f"systemctl restart {APP_UNIT}")
        figures["app restart with the store unreachable: s without an answer"] = round(down, 1)
        assert down <= 5, f"{down:.1f} s"
        counts.append(visit(app))
        # Writes pile up unreplicated: readiness turns red and says so.
        answer = wait_until(
            lambda: visit(app) and (a := get(app, "/healthz"))["status"] == 503 and a,
            timeout=40,
            what="readiness red while writes are not replicated",
        )
        assert answer["body"].startswith("replication behind"), answer
        last = visit(app)
    back = wait_until(
        lambda: replica_count(app) == last and True,
        timeout=60,
        what="every write in the replica within 60 s of the store's return",
        interval=2,
    )
    assert back
    wait_until(lambda: healthy(app), timeout=30, what="ready again")


def _give_the_replica_up(app, storage, replica_kind) -> None:
    """Repair as an operator who gives a damaged replica up would: an empty
    path is "no backup yet"; the host starts over on a new database."""
    app.check_output(f"systemctl stop {APP_UNIT} {LITESTREAM_UNIT}")
    delete_replica_objects(app, storage, replica_kind, ".")
    app.check_output(f"systemctl start {APP_UNIT}")
    wait_until(lambda: healthy(app), timeout=60, what="healthy on a new database")
    assert visit(app) == 1
