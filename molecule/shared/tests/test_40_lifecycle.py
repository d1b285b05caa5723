"""Lifecycle drills: stop/start, killed Litestream, killed app, restarts
under load (systemd's socket holds the listener)."""

from __future__ import annotations

import time

from deployment import APP_SOCKET, APP_UNIT, LITESTREAM_UNIT, PORT
from faults import Load
from hosts import (
    get,
    healthy,
    host_now,
    journal,
    main_pid,
    replaced,
    replica_count,
    stop_app,
    unit_state,
    visit,
    wait_until,
)


def test_stopping_the_app_stops_litestream_after_it(app):
    count = visit(app)
    since = host_now(app)
    stop_app(app)
    assert unit_state(app, APP_UNIT) == "inactive"
    assert unit_state(app, LITESTREAM_UNIT) == "inactive"
    # Its listener went with it: a stop is not a wait, connections are refused.
    assert unit_state(app, APP_SOCKET) == "inactive"
    assert get(app, "/")["status"] == 0, "nothing listens on a stopped app's port"
    lines = journal(app, since, APP_UNIT, LITESTREAM_UNIT).splitlines()
    app_stopped = next(i for i, line in enumerate(lines) if line.startswith(f"Stopped {APP_UNIT}"))
    litestream_stopping = next(
        i for i, line in enumerate(lines) if line.startswith(f"Stopping {LITESTREAM_UNIT}")
    )
    assert app_stopped < litestream_stopping, lines
    # The final sync on stop holds the last write.
    assert replica_count(app) == count


def test_starting_the_app_starts_litestream_and_keeps_the_data(stopped_app):
    app = stopped_app
    count = replica_count(app)
    since = host_now(app)
    app.check_output(f"systemctl start {APP_UNIT}")
    assert unit_state(app, LITESTREAM_UNIT) == "active"
    assert unit_state(app, APP_SOCKET) == "active"
    wait_until(lambda: healthy(app), timeout=30, what="counter healthy")
    assert "Database already exists, skipping restore" in journal(app, since, LITESTREAM_UNIT)
    assert visit(app) == count + 1


def test_killed_litestream_comes_back_and_catches_up(app):
    app_pid = main_pid(app, APP_UNIT)
    old_pid = main_pid(app, LITESTREAM_UNIT)
    app.check_output(f"systemctl kill -s KILL {LITESTREAM_UNIT}")
    # Writes while Litestream is down: the app keeps serving.
    counts = [visit(app) for _ in range(5)]
    new_pid = wait_until(
        lambda: unit_state(app, LITESTREAM_UNIT) == "active" and main_pid(app, LITESTREAM_UNIT),
        timeout=15,
        what="litestream running again",
        interval=0.5,
    )
    assert new_pid != old_pid
    assert main_pid(app, APP_UNIT) == app_pid, "the app must not be restarted"
    wait_until(
        lambda: replica_count(app) == counts[-1], timeout=30, what=f"replica holds {counts[-1]}"
    )


def test_a_crashed_app_comes_back_and_litestream_keeps_replicating(app):
    count = visit(app)
    replicating = main_pid(app, LITESTREAM_UNIT)
    since = host_now(app)
    app.check_output(f"systemctl kill -s KILL {APP_UNIT}")
    wait_until(lambda: healthy(app), timeout=30, what="counter healthy again")
    assert main_pid(app, LITESTREAM_UNIT) == replicating
    logged = journal(app, since, APP_UNIT)
    assert "keeps replicating" in logged, logged
    assert visit(app) == count + 1


def test_restarts_and_outside_sigterms_under_load_fail_no_request(app, figures):
    """systemd's socket holds the listener: while the app restarts, new
    connections wait in its queue and the next process answers them; the
    stopping one answers what it began. A SIGKILL fails only the requests
    in flight at the kill."""
    listening = app.check_output("systemctl show -p Listen --value %s", APP_SOCKET)
    assert f":{PORT}" in listening, listening
    for how, action, times in (
        ("systemctl restart", f"systemctl restart {APP_UNIT}", 3),
        ("outside SIGTERM", f"systemctl kill {APP_UNIT}", 3),
    ):
        with Load(app, rate=200, threads=8, seconds=120) as load:
            for _ in range(times):
                time.sleep(1)
                replaced(app, APP_UNIT, action)
            time.sleep(2)
            seen = load.stop()
        figures[f"{how} x{times} under ~200 req/s: failed requests"] = (
            f"{seen['failed']} of {seen['ok'] + seen['failed']}"
        )
        assert seen["failed"] == 0, (how, seen)
        assert seen["ok"] > 0
    # SIGKILL: the process dies with what it holds; nothing else fails.
    threads = 8
    with Load(app, rate=200, threads=threads, seconds=120) as load:
        time.sleep(1)
        replaced(app, APP_UNIT, f"systemctl kill -s KILL {APP_UNIT}")
        time.sleep(2)
        seen = load.stop()
    figures["app SIGKILL under ~200 req/s: failed requests (in flight)"] = seen["failed"]
    assert seen["failed"] <= threads, f"at most one request in flight per client: {seen}"
    wait_until(lambda: healthy(app), timeout=30, what="healthy")
