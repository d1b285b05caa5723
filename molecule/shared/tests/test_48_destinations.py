"""The replica's destination changes under a live database: a switch to a
new path and back, a replica wiped while the app runs, a path that holds
another history. Under ~100 writes/s with every answer recorded: no failed
request, readiness red while the replica cannot be restored and green again
without an operator step, every acknowledged visit restorable, and never two
histories in one path (README "Changing where a host replicates").

A path switch within the scenario's store is the same case for the guard as
a switch of store, bucket or endpoint: what it compares is the destination's
fingerprint and what the destination holds.
"""

from __future__ import annotations

import json
import re
import time

import pytest
import yaml

from deployment import (
    APP_UNIT,
    CONFIG,
    DB,
    ENV_FILE,
    GUARD,
    LITESTREAM,
    LITESTREAM_UNIT,
    SETTINGS,
)
from faults import Load, docker
from hosts import (
    app_name,
    db_count,
    deployed_replica,
    get,
    healthy,
    host_now,
    journal,
    remove_database,
    run_site,
    start_until_said,
    stop_app,
    visit,
    wait_until,
)
from stores import delete_replica_objects, objects_under

SCRATCH = "/var/tmp/destinations"  # noqa: S108 - on a test host


def _moved(replica: dict, suffix: str) -> dict:
    """The same store, another path beside the host's own (within what its
    credentials may use)."""
    path = replica["path"]
    if replica["type"] == "s3":
        return {**replica, "path": path.rsplit("/", 1)[0] + f"/{suffix}.db"}
    return {**replica, "path": f"{path}-{suffix}"}


def _deploy(app, storage, replica: dict | None) -> float:
    """site.yml for this host (and the store, whose facts it reads), with
    the replica given; returns when the play ended (monotonic)."""
    extra = {"litestream_replica": replica} if replica else {}
    result = run_site(extra, limit=f"{app_name(app)},{app_name(storage)}")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return time.monotonic()


def _green_within(app, seconds: float, since: float) -> float:
    wait_until(lambda: healthy(app), timeout=seconds, what="readiness green", interval=0.5)
    return time.monotonic() - since


def _status(app) -> dict:
    return json.loads(app.check_output(f"{GUARD} status"))


def _restore_from(app, replica: dict) -> int:
    """The count a restore of `replica` gives (Litestream's own restore, as
    an operator would run it with a configuration naming that destination)."""
    app.check_output("rm -rf %s && install -d -m 0700 %s", SCRATCH, SCRATCH)
    config = yaml.safe_load(app.file(CONFIG).content_string)
    config["dbs"][0]["replica"] = {
        k: v
        for k, v in {**config["dbs"][0]["replica"], **replica}.items()
        if k not in ("access-key-id", "secret-access-key")
    }
    if replica["type"] == "s3":
        config["dbs"][0]["replica"]["access-key-id"] = "${LITESTREAM_ACCESS_KEY_ID}"
        config["dbs"][0]["replica"]["secret-access-key"] = "${LITESTREAM_SECRET_ACCESS_KEY}"
    for key in ("socket", "addr"):
        config.pop(key, None)
    app.check_output("printf '%%s' %s > %s/litestream.yml", yaml.safe_dump(config), SCRATCH)
    app.check_output(
        "set -a; [ ! -r %s ] || . %s; %s restore -config %s/litestream.yml -o %s/copy.db %s",
        ENV_FILE,
        ENV_FILE,
        LITESTREAM,
        SCRATCH,
        SCRATCH,
        DB,
    )
    count = db_count(app, f"{SCRATCH}/copy.db")
    app.check_output("rm -rf %s", SCRATCH)
    return int(count)


# `make test` runs the deploy-time refusal on S3, the wipe and the takeover
# on both stores; the switches (this one on SFTP, and the long one below on
# both stores, after 5.5 min of writes) run in `make drills`, for make
# test's time (three minutes each).
@pytest.mark.drill
@pytest.mark.sftp
def test_a_switch_and_back_keeps_replicating_and_both_destinations_restore(app, storage, figures):
    original = deployed_replica(app)
    switched = _moved(original, "switched")
    with Load(app, rate=100, seconds=600) as load:
        time.sleep(5)
        ended = _deploy(app, storage, switched)
        took = _green_within(app, 60, ended)
        acked_green = visit(app)
        status = _status(app)
        assert status["destination"].endswith(switched["path"].strip("/")), status
        assert status["history"]["restarts"] >= 1
        assert status["replica_check"]["restorable"] is True, status["replica_check"]
        assert _restore_from(app, switched) >= acked_green
        figures["destination switch: deploy end -> readiness green"] = f"{took:.1f} s"
        # Back to the first path: this host's own older history goes on.
        time.sleep(5)
        since = host_now(app)
        ended = _deploy(app, storage, None)
        took_back = _green_within(app, 60, ended)
        acked_back = visit(app)
        seen = load.stop()
    said = journal(app, since, LITESTREAM_UNIT)
    assert "holds this host's own older history" in said, said[-3000:]
    assert seen["failed"] == 0, seen
    assert _restore_from(app, original) >= acked_back
    # The destination left behind still restores its last state, by hand and
    # through restore.yml (restore_replica names it; a dry run here).
    assert _restore_from(app, switched) >= acked_green
    plan = run_site(
        {
            "restore_hosts": app_name(app),
            "restore_latest": True,
            "restore_dry_run": True,
            "restore_replica": switched,
        },
        playbook="playbooks/restore.yml",
    )
    said = plan.stdout + plan.stderr
    assert plan.returncode == 0, said[-3000:]
    assert "restore-source.yml" in said and "DRY RUN" in said, said[-3000:]
    assert not app.file(f"{SETTINGS['litestream_config_dir']}/restore-source.env").exists
    figures["destination switch back: deploy end -> readiness green"] = f"{took_back:.1f} s"


def _set_aside(objects: list[str]) -> list[str]:
    """The objects under an aside-<time> prefix, named as in the path."""
    return sorted(o.split("/aside-", 1)[1].split("/", 1)[1] for o in objects if "/aside-" in o)


def _wipe(app, storage, replica_kind) -> list[str]:
    """Every LTX file under this host's replica path deleted, through the
    store (S3: its API; SFTP: the server's files, below the host's path)."""
    if replica_kind == "sftp":
        return delete_replica_objects(app, storage, replica_kind, r"\.ltx$")
    path = deployed_replica(app)["path"].strip("/")
    return delete_replica_objects(app, storage, replica_kind, "^" + re.escape(path) + "/")


def test_a_replica_wiped_at_runtime_is_red_then_restarted_and_restorable(
    app, storage, replica_kind, figures
):
    with Load(app, rate=100, seconds=600) as load:
        time.sleep(5)
        gone = _wipe(app, storage, replica_kind)
        assert gone, "the replica held files"
        wiped = time.monotonic()
        wait_until(lambda: not healthy(app), timeout=60, what="readiness red", interval=0.5)
        red = time.monotonic() - wiped
        reason = get(app, "/healthz")["body"]
        wait_until(lambda: healthy(app), timeout=120, what="readiness green again", interval=1)
        green = time.monotonic() - wiped
        time.sleep(3)
        seen = load.stop()
    assert seen["failed"] == 0, seen
    assert "replica" in reason, reason
    status = _status(app)
    assert status["replica_check"]["restorable"] is True
    assert "cannot be restored" in status["history"]["last"]["why"], status["history"]
    # A host loss now restores every acknowledged visit.
    stop_app(app)
    remove_database(app)
    app.check_output(f"systemctl start {APP_UNIT}")
    wait_until(lambda: healthy(app), timeout=120, what="restored")
    assert visit(app) - 1 >= seen["max_ack"]
    figures["replica wiped at runtime: red after / green again after"] = (
        f"{red:.1f} s / {green:.1f} s"
    )


def _foreign_history(app, replica: dict) -> None:
    """Another database's history at `replica` (as another host, or a copy
    from elsewhere, would leave it): Litestream itself replicates a scratch
    database there once."""
    app.check_output("rm -rf %s && install -d -m 0700 %s", SCRATCH, SCRATCH)
    app.check_output(
        "python3 -c %s %s",
        "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); "
        "c.execute('PRAGMA journal_mode=wal'); c.execute('CREATE TABLE t(x)'); "
        "c.execute('INSERT INTO t VALUES (1)'); c.commit()",
        f"{SCRATCH}/other.db",
    )
    config = yaml.safe_load(app.file(CONFIG).content_string)
    entry = config["dbs"][0]
    entry["path"] = f"{SCRATCH}/other.db"
    entry["replica"] = {**entry["replica"], "path": replica["path"]}
    config = {"dbs": [entry]}
    app.check_output("printf '%%s' %s > %s/litestream.yml", yaml.safe_dump(config), SCRATCH)
    app.check_output(
        "set -a; [ ! -r %s ] || . %s; timeout 60 %s replicate -once -config %s/litestream.yml",
        ENV_FILE,
        ENV_FILE,
        LITESTREAM,
        SCRATCH,
    )
    app.check_output("rm -rf %s", SCRATCH)


@pytest.mark.s3
def test_a_deploy_to_a_path_holding_another_history_is_refused_before_any_change(app, storage):
    foreign = _moved(deployed_replica(app), "foreign")
    _foreign_history(app, foreign)
    config_before = app.file(CONFIG).sha256sum
    before = visit(app)
    result = run_site({"litestream_replica": foreign}, limit=f"{app_name(app)},{app_name(storage)}")
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert "The new Litestream settings were refused" in output, output[-3000:]
    assert "holds another history" in output and "Not switching" in output
    assert "empty path" in output and "litestream_replica_takeover=true" in output
    assert app.file(CONFIG).sha256sum == config_before
    assert visit(app) == before + 1 and healthy(app)


def test_another_history_in_the_hosts_own_path_is_refused_at_start_then_taken_over(
    app, storage, replica_kind
):
    own = deployed_replica(app)
    stop_app(app)
    # The host's path reused: its history gone, another one in its place.
    assert _wipe(app, storage, replica_kind)
    _foreign_history(app, own)
    foreign_objects = objects_under(app, storage, own)
    assert foreign_objects
    said = start_until_said(
        app, "holds another history", timeout=60, what="the guard refuses the path"
    )
    assert "empty path" in said and "litestream-guard takeover" in said, said[-3000:]
    assert not healthy(app), "never ready while nothing replicates"
    assert objects_under(app, storage, own) == foreign_objects, "nothing touched"
    # The way out: take the path over (its objects kept under a dated prefix).
    app.check_output(f"{GUARD} takeover")
    wait_until(lambda: healthy(app), timeout=90, what="ready after the takeover")
    acked = visit(app)
    kept = sorted(
        o.split("/aside-", 1)[1].split("/", 1)[1]
        for o in objects_under(app, storage, own)
        if "/aside-" in o
    )
    prefix = own["path"].strip("/") + "/"
    assert kept == sorted(o.split(prefix, 1)[1] for o in foreign_objects), (foreign_objects, kept)
    status = _status(app)
    assert "taken over" in status["history"]["last"]["why"]
    assert _restore_from(app, own) >= acked


def _power_cut_and_redeploy(app, storage, replica: dict | None) -> int:
    """Power cut; the host comes back as a new machine (its database gone)
    and is deployed again: the count it restores from its destination."""
    name = app_name(app)
    app.check_output(f"systemctl disable {APP_UNIT} {LITESTREAM_UNIT}")
    docker("kill", name)
    docker("start", name)
    wait_until(
        lambda: (
            app.run("timeout 30 systemctl is-system-running --wait").stdout.strip()
            in ("running", "degraded")
        ),
        timeout=120,
        what="the host boots",
    )
    remove_database(app)
    _deploy(app, storage, replica)
    wait_until(lambda: healthy(app), timeout=120, what="restored and ready")
    return visit(app) - 1


@pytest.mark.drill
def test_switches_after_l0_retention_with_power_cuts_lose_nothing_acknowledged(
    app, storage, figures
):
    """The issue's drill: each switch after more than Litestream's
    l0-retention (5 min) of ~100 writes/s, there and back; after each, a
    power cut and a re-deploy restore every visit acknowledged before the
    last green readiness."""
    original = deployed_replica(app)
    switched = _moved(original, "drill")
    for label, replica in (("there", switched), ("back", None)):
        with Load(app, rate=100, seconds=900) as load:
            time.sleep(330)
            ended = _deploy(app, storage, replica)
            took = _green_within(app, 60, ended)
            acked = visit(app)
            seen = load.stop()
        assert seen["failed"] == 0, seen
        restored = _power_cut_and_redeploy(app, storage, replica)
        assert restored >= acked, (restored, acked)
        key = f"switch {label} after 5.5 min of writes: deploy end -> green / restored >= acked"
        figures[key] = f"{took:.1f} s / {restored} >= {acked}"
