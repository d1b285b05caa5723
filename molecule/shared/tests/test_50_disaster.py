"""Disaster drills: lost data directory, unreachable replica store."""

from __future__ import annotations

from conftest import get, healthy, host_now, journal, stop_app, visit, wait_until

RESTORING = "No database found, restoring from replica if exists"


def _wipe_data(app) -> None:
    app.check_output(
        "rm -rf /var/lib/counter/counter.db /var/lib/counter/counter.db-*"
        " /var/lib/counter/.counter.db-litestream"
    )
    assert app.check_output("ls -A /var/lib/counter") == ""


def test_lost_database_is_restored_to_the_exact_count(app):
    count = visit(app)
    stop_app(app)
    _wipe_data(app)
    since = host_now(app)
    app.check_output("systemctl start counter.service")
    wait_until(lambda: healthy(app), timeout=60, what="counter healthy after restore")
    assert RESTORING in journal(app, since, "litestream.service")
    assert visit(app) == count + 1


def test_unreachable_store_keeps_the_app_down_until_it_is_back(app, storage, store_service):
    count = visit(app)
    stop_app(app)
    _wipe_data(app)
    storage.check_output("systemctl stop %s", store_service)
    try:
        since = host_now(app)
        app.check_output("systemctl start --no-block counter.service")
        # Two restore attempts fail; meanwhile nothing serves a fresh counter.
        wait_until(
            lambda: (
                journal(app, since, "litestream.service").count("not starting on an empty database")
                >= 2
            ),
            timeout=150,
            what="two failed restore attempts",
        )
        assert get(app, "/")["status"] == 0, (
            "the app must not serve while the replica is unreachable"
        )
        assert app.run("systemctl is-active counter.service").stdout.strip() != "active"
        assert not app.file("/var/lib/counter/counter.db").exists
    finally:
        storage.check_output("systemctl start %s", store_service)
    # Back by itself: the next retry restores, then the app starts.
    wait_until(lambda: healthy(app), timeout=150, what="counter healthy once the store is back")
    assert RESTORING in journal(app, since, "litestream.service")
    assert visit(app) == count + 1
