"""Disaster drills: lost data directory, unreachable replica store."""

from __future__ import annotations

from deployment import APP_UNIT, DATA, DB, LITESTREAM_UNIT
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
    assert RESTORING in journal(app, since, LITESTREAM_UNIT)
    assert visit(app) == count + 1


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
        assert get(app, "/")["status"] == 0, (
            "the app must not serve while the replica is unreachable"
        )
        assert app.run(f"systemctl is-active {APP_UNIT}").stdout.strip() != "active"
        assert not app.file(DB).exists
    finally:
        storage.check_output("systemctl start %s", store_service)
    # Back by itself: the next retry restores, then the app starts.
    wait_until(lambda: healthy(app), timeout=150, what="counter healthy once the store is back")
    assert RESTORING in journal(app, since, LITESTREAM_UNIT)
    assert visit(app) == count + 1
