"""Disaster drills: lost data directory, unreachable replica store."""

from __future__ import annotations

from deployment import APP_UNIT, CONFIG, DATA, DB, ENV_FILE, GUARD, LITESTREAM, LITESTREAM_UNIT
from hosts import (
    get,
    healthy,
    host_now,
    journal,
    remove_database,
    start_until_said,
    stop_app,
    visit,
    wait_until,
)

RESTORING = "No database found, restoring from replica if exists"


def _wipe_data(app) -> None:
    remove_database(app)
    assert app.check_output(f"ls -A {DATA}") == ""


def test_lost_database_is_restored_to_the_exact_count(app):
    count = visit(app)
    stop_app(app)
    _wipe_data(app)
    since = host_now(app)
    app.check_output(f"systemctl start {APP_UNIT}")
    wait_until(lambda: healthy(app), timeout=60, what="counter healthy after restore")
    said = journal(app, since, LITESTREAM_UNIT)
    assert RESTORING in said
    assert "fetched the plan's" in said, "the guard fetched the plan's files itself"
    assert visit(app) == count + 1
    # What `systemctl status` shows after the restore (during it: its progress).
    status = app.check_output(f"systemctl show -p StatusText --value {LITESTREAM_UNIT}")
    assert status.startswith("Restored from the replica at this start (TXID "), status


def test_a_staged_restore_is_byte_identical_to_litestreams_own(app):
    """The same plan, restored through the guard's stage (restore-copy) and
    by Litestream straight from the store: the same bytes."""
    visit(app)
    stop_app(app)  # no write moves the replica between the two
    scratch = "/var/tmp/staged-vs-own"  # noqa: S108 - on a test host
    app.check_output("rm -rf %s && mkdir -m 0700 %s", scratch, scratch)
    try:
        said = app.check_output(
            "%s restore-copy --latest --output %s/staged.db 2>&1", GUARD, scratch
        )
        assert "fetched the plan's" in said, said
        app.check_output(
            "set -a; [ ! -e %s ] || . %s; set +a; %s restore -config %s -o %s/own.db %s",
            ENV_FILE,
            ENV_FILE,
            LITESTREAM,
            CONFIG,
            scratch,
            DB,
        )
        staged, own = (
            app.check_output("sha256sum %s/%s.db", scratch, name).split()[0]
            for name in ("staged", "own")
        )
        assert staged == own
    finally:
        app.check_output("rm -rf %s", scratch)
        app.check_output(f"systemctl start {APP_UNIT}")
    wait_until(lambda: healthy(app), timeout=60, what="healthy again")


def test_unreachable_store_keeps_the_app_down_until_it_is_back(app, storage, store_service):
    count = visit(app)
    stop_app(app)
    _wipe_data(app)
    storage.check_output("systemctl stop %s", store_service)
    try:
        since = host_now(app)
        # Two restore attempts fail; meanwhile nothing serves a fresh counter.
        start_until_said(
            app,
            "not starting on an empty database",
            timeout=150,
            what="two failed restore attempts",
            times=2,
        )
        # Not even a listener: connections are refused, nobody waits.
        answer = get(app, "/")
        assert answer["status"] == 0 and "refused" in answer["body"], (
            "the app must not serve while the replica is unreachable",
            answer,
        )
        assert app.run(f"systemctl is-active {APP_UNIT}").stdout.strip() != "active"
        assert not app.file(DB).exists
    finally:
        storage.check_output("systemctl start %s", store_service)
    # Back by itself: the next retry restores, then the app starts.
    wait_until(lambda: healthy(app), timeout=150, what="counter healthy once the store is back")
    assert RESTORING in journal(app, since, LITESTREAM_UNIT)
    assert visit(app) == count + 1
