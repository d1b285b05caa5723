"""Long fault drills under load, with figures (`make drills`; not in CI).

Each drill asserts its safe outcome and records what it measured in the
`figures` fixture; `make drills` renders them as docs/drills.md.
"""

from __future__ import annotations

import json
import time

import pytest
import yaml

from deployment import APP_UNIT, CONFIG, DATA, DB, LITESTREAM_UNIT, SETTINGS
from faults import Load, StorePaused, docker
from hosts import (
    app_name,
    deployed_replica,
    get,
    healthy,
    host_now,
    journal,
    remove_database,
    replaced,
    replica_count,
    run_site,
    stop_app,
    visit,
    wait_until,
)

pytestmark = pytest.mark.drill


def _boot_state(app) -> str:
    """`running` or `degraded` once the host's boot has finished, else ""."""
    state = app.run("timeout 30 systemctl is-system-running --wait").stdout.strip()
    return state if state in ("running", "degraded") else ""


def _data_kib(app) -> int:
    # Litestream deletes L0 files while du walks the directory (retention):
    # du then exits 1 for the files it lost, and still prints the total.
    return int(app.run("du -sk %s 2>/dev/null", DATA).stdout.split()[0])


def test_graceful_stop_start_cycles_under_load_lose_nothing(app, figures):
    misses, cycles = 0, 20
    for _ in range(cycles):
        with Load(app, rate=100) as load:
            time.sleep(3)
            stop_app(app)
            seen = load.stop()
        restored = replica_count(app)
        misses += restored != seen["max_ack"]
        assert restored == seen["max_ack"], seen
        app.check_output(f"systemctl start {APP_UNIT}")
        wait_until(lambda: healthy(app), timeout=60, what="healthy")
    figures["stop/start cycles under ~100 writes/s: restored == last acknowledged"] = (
        f"{cycles - misses}/{cycles}"
    )


def test_litestream_sigkill_under_load_fails_and_loses_nothing(app, figures):
    with Load(app, rate=100) as load:
        for _ in range(10):
            time.sleep(2)
            replaced(app, LITESTREAM_UNIT, f"systemctl kill -s KILL {LITESTREAM_UNIT}", timeout=10)
        time.sleep(2)
        seen = load.stop()
    assert seen["failed"] == 0, seen
    wait_until(lambda: replica_count(app) == seen["max_ack"], timeout=30, what="replica caught up")
    figures["Litestream SIGKILL x10 under load: failed requests / lost visits"] = (
        f"{seen['failed']} / 0 (of {seen['ok']})"
    )


def _power_cut_under_load(app, storage, seconds: float) -> dict:
    """~100 writes/s for `seconds`, then the app host's power cut (docker
    kill); it boots again with its units disabled. What the load saw."""
    # The host that comes back is a new machine restored from the replica: its
    # old disk's units must not start first and ship what the replica lacked.
    app.check_output(f"systemctl disable {APP_UNIT} {LITESTREAM_UNIT}")
    # The load comes from the storage host, so its record survives the cut.
    with Load(app, rate=100, source=storage) as load:
        time.sleep(seconds)
        docker("kill", app_name(app))
        seen = load.stop()
    docker("start", app_name(app))
    wait_until(lambda: _boot_state(app), timeout=120, what="the host boots")
    return seen


def test_power_cut_loses_at_most_two_seconds_of_writes(app, storage, figures):
    seen = _power_cut_under_load(app, storage, 10)
    remove_database(app)
    app.check_output(f"systemctl enable --now {APP_UNIT}")
    wait_until(lambda: healthy(app), timeout=120, what="restored from the replica")
    restored = visit(app) - 1
    acked = seen["max_ack"]
    lost = acked - restored
    rate = seen["ok"] / 10
    figures["power cut under ~100 writes/s: acknowledged / restored / lost visits"] = (
        f"{acked} / {restored} / {lost} ({lost / rate:.1f} s of writes)"
    )
    assert lost <= 2 * rate, f"lost {lost} visits, more than 2 s of writes"


ACK_CUTS = 20


def test_acknowledged_after_replication_power_cuts_lose_no_answered_visit(app, storage, figures):
    """counter_ack_after_replication on: 20 power cuts (docker kill) under
    ~100 writes/s from the storage host, each read back from the replica
    while the host is down for good (its units stay disabled until the
    replica has been counted): the replica holds every visit answered 200."""
    name = app_name(app)
    hosts = f"{name},{app_name(storage)}"  # the store's play publishes what the app's reads
    result = run_site({"counter_ack_after_replication": True}, limit=hosts)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    readiness = get(app, "/healthz")["body"]
    assert "acknowledged once the replica holds them" in readiness, readiness
    # Litestream keeps level 0 short for an app that waits for its sync.
    assert _level_settings(app) == ("1s", "1s", "10s")
    rows = []
    try:
        for _ in range(ACK_CUTS):
            seen = _power_cut_under_load(app, storage, 3)
            restored = replica_count(app)  # nothing ran since the cut
            rows.append((seen["max_ack"], restored, seen["ok"], seen["failed"]))
            assert restored >= seen["max_ack"], rows[-1]
            app.check_output(f"systemctl enable --now {APP_UNIT}")
            wait_until(lambda: healthy(app), timeout=120, what="serving again")
    finally:
        result = run_site({}, limit=hosts)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert get(app, "/healthz")["body"] == "ok\n"
    assert _level_settings(app) == ("5m", "15s", "30s")  # Litestream's own again
    answered = sum(row[2] for row in rows)
    figures[
        f"ack after replication, {ACK_CUTS} power cuts under ~100 writes/s: "
        "acknowledged visits lost / answered 200 / failed (503 or cut)"
    ] = f"0 / {answered} / {sum(row[3] for row in rows)}"


def _level_settings(app) -> tuple[str, str, str]:
    """l0-retention, its check interval and level 1's interval, as configured."""
    config = yaml.safe_load(app.file(CONFIG).content_string)
    return (
        config["l0-retention"],
        config["l0-retention-check-interval"],
        config["levels"][0]["interval"],
    )


def _deploy_vars_without_the_store_host(app) -> dict:
    """The same settings, given by hand as for a store outside the inventory:
    the play then needs nothing from the (paused) storage host."""
    key = app.file(SETTINGS["litestream_sftp_key_path"])
    ca = app.file(SETTINGS["litestream_ca_file"])
    return {
        "litestream_replica": deployed_replica(app),
        "litestream_sftp_private_key": key.content_string if key.exists else "",
        # An S3 store's own CA, as the host trusts it now.
        "litestream_ca_certificate": ca.content_string if ca.exists else "",
    }


def _history_restarts(app) -> int:
    status = json.loads(app.check_output(f"{SETTINGS['litestream_published']['guard']} status"))
    return int((status.get("history") or {}).get("restarts", 0))


def test_store_outage_of_ten_minutes_under_load(app, storage, replica_kind, figures):
    """The destination unreachable for 10 minutes under ~100 writes/s: no
    failed request, the local data directory stays bounded (sampled every
    minute), an unreachable store is never taken for a wiped one (no new
    history), and the replica is complete soon after the store's return."""
    # Converged first, so that the deploy during the outage changes nothing.
    assert run_site({}).returncode == 0
    visit(app)
    before = _data_kib(app)
    restarts = _history_restarts(app)
    deploy_vars = _deploy_vars_without_the_store_host(app)
    samples: list[int] = []
    with Load(app, rate=100, seconds=900) as load, StorePaused(storage):
        for minute in range(10):
            time.sleep(60)
            samples.append(_data_kib(app))
            if minute == 4:
                # A deploy that changes no replica setting completes meanwhile
                # (this host, its replica given by hand: the store's facts
                # are out of reach).
                result = run_site(deploy_vars, limit=app_name(app))
                assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        reason = get(app, "/healthz")["body"]
    returned = time.monotonic()
    seen = load.stop()
    wait_until(
        lambda: replica_count(app) == seen["max_ack"],
        timeout=60,
        what="every write in the replica within 60 s",
        interval=2,
    )
    catch_up = time.monotonic() - returned
    after = _data_kib(app)
    assert seen["failed"] == 0, seen
    assert "cannot be restored" not in reason, reason
    assert _history_restarts(app) == restarts, "an unreachable store is not a wiped one"
    figures["store outage 10 min under load: failed requests"] = f"{seen['failed']} of {seen['ok']}"
    figures["store outage 10 min: s from the store's return to the replica complete"] = round(
        catch_up, 1
    )
    figures["store outage 10 min: local data dir KiB before / max during / after"] = (
        f"{before} / {max(samples)} / {after} (per minute: {', '.join(map(str, samples))})"
    )


def test_store_down_at_boot_with_the_database_missing(app, storage, store_service, figures):
    count = visit(app)
    stop_app(app)
    remove_database(app)
    with StorePaused(storage):
        started = time.monotonic()
        docker("restart", app_name(app))
        state = wait_until(
            lambda: _boot_state(app),
            timeout=300,
            what="boot finished",
        )
        booted = time.monotonic() - started
        assert state in ("running", "degraded"), state
        assert get(app, "/")["status"] == 0, "fails closed"
        assert not app.file(DB).exists
        time.sleep(20)
        since = host_now(app)
    wait_until(lambda: healthy(app), timeout=180, what="recovers alone")
    recovered = time.monotonic() - started
    assert "Restored" in journal(app, str(int(since) - 60), LITESTREAM_UNIT)
    assert visit(app) == count + 1
    figures["store down at boot, database missing: s until boot finished"] = round(booted, 1)
    figures["store down at boot: s from boot to serving after the store returned (20 s+ down)"] = (
        round(recovered, 1)
    )
