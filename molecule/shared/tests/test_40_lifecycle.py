"""Lifecycle drills: stop/start, killed Litestream, killed app."""

from __future__ import annotations

from conftest import (
    healthy,
    host_now,
    journal,
    main_pid,
    replica_count,
    stop_app,
    visit,
    wait_until,
)


def _active(host, unit: str) -> str:
    return host.run("systemctl is-active %s", unit).stdout.strip()


def test_stopping_the_app_stops_litestream_after_it(app):
    count = visit(app)
    since = host_now(app)
    stop_app(app)
    assert _active(app, "counter.service") == "inactive"
    assert _active(app, "litestream.service") == "inactive"
    lines = journal(app, since, "counter.service", "litestream.service").splitlines()
    app_stopped = next(
        i for i, line in enumerate(lines) if line.startswith("Stopped counter.service")
    )
    litestream_stopping = next(
        i for i, line in enumerate(lines) if line.startswith("Stopping litestream.service")
    )
    assert app_stopped < litestream_stopping, lines
    # The final sync on stop holds the last write.
    assert replica_count(app) == count


def test_starting_the_app_starts_litestream_and_keeps_the_data(app):
    count = replica_count(app)
    since = host_now(app)
    app.check_output("systemctl start counter.service")
    assert _active(app, "litestream.service") == "active"
    wait_until(lambda: healthy(app), timeout=30, what="counter healthy")
    assert "Database already exists, skipping restore" in journal(app, since, "litestream.service")
    assert visit(app) == count + 1


def test_killed_litestream_comes_back_and_catches_up(app):
    app_pid = main_pid(app, "counter.service")
    old_pid = main_pid(app, "litestream.service")
    app.check_output("systemctl kill -s KILL litestream.service")
    # Writes while Litestream is down: the app keeps serving.
    counts = [visit(app) for _ in range(5)]
    new_pid = wait_until(
        lambda: (
            _active(app, "litestream.service") == "active" and main_pid(app, "litestream.service")
        ),
        timeout=15,
        what="litestream running again",
        interval=0.5,
    )
    assert new_pid != old_pid
    assert main_pid(app, "counter.service") == app_pid, "the app must not be restarted"
    wait_until(
        lambda: replica_count(app) == counts[-1], timeout=30, what=f"replica holds {counts[-1]}"
    )


def test_a_crashed_app_comes_back_and_litestream_keeps_replicating(app):
    count = visit(app)
    replicating = main_pid(app, "litestream.service")
    since = host_now(app)
    app.check_output("systemctl kill -s KILL counter.service")
    wait_until(lambda: healthy(app), timeout=30, what="counter healthy again")
    assert main_pid(app, "litestream.service") == replicating
    logged = journal(app, since, "counter.service")
    assert "keeps replicating" in logged, logged
    assert visit(app) == count + 1
