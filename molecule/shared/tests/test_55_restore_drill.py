"""The scheduled restore drill: litestream-restore-drill.timer restores the
newest replica into scratch, checks it and compares it with the live database;
its outcome is seen without reading logs (the unit's state, result.json,
`litestream-guard status`). A damaged replica makes it fail, visibly."""

from __future__ import annotations

import json

import pytest

from deployment import SETTINGS
from hosts import app_name, concurrent_visits, host_now, http_get, journal, unit_prop, visit
from stores import sftp_upload_path

DRILL = "litestream-restore-drill"
RESULT = SETTINGS["litestream_published"]["restore_drill_result"]


def run_drill(host) -> tuple[int, dict]:
    """Start the drill as the timer does and wait for it; its exit code and
    the result it recorded."""
    out = host.run(f"systemctl start {DRILL}.service")
    return out.rc, json.loads(host.check_output("cat %s", RESULT))


def get_url(host, url: str) -> str:
    answer = http_get(host, url)
    assert answer["status"] == 200, answer
    return answer["body"]


def drill_metric(host) -> float:
    """counter_restore_drill_success as the app's metrics listener serves it
    (on the host's loopback)."""
    url = f"http://127.0.0.1:{SETTINGS['counter_metrics_port']}/metrics"
    body = get_url(host, url)
    (line,) = [x for x in body.splitlines() if x.startswith("counter_restore_drill_success ")]
    return float(line.split()[1])


def guard_status(host) -> dict:
    return json.loads(host.check_output("litestream-guard status"))


def test_the_drill_timer_is_scheduled(app):
    assert app.service(f"{DRILL}.timer").is_enabled
    assert unit_prop(app, f"{DRILL}.timer", "ActiveState") == "active"
    schedule = SETTINGS["litestream_restore_drill_schedule"]
    normalized = app.check_output("systemd-analyze calendar %s", schedule)
    (normalized,) = [
        line.split(":", 1)[1].strip()
        for line in normalized.splitlines()
        if "Normalized form" in line
    ]
    assert f"OnCalendar={normalized} " in unit_prop(app, f"{DRILL}.timer", "TimersCalendar")
    assert unit_prop(app, f"{DRILL}.timer", "Persistent") == "yes"
    # As Litestream's account, read-only but for the database directory.
    assert unit_prop(app, f"{DRILL}.service", "User") == "litestream"
    assert unit_prop(app, f"{DRILL}.service", "ProtectSystem") == "strict"


def test_a_drill_restores_the_replica_and_matches_the_live_database(app):
    concurrent_visits(app, 20)
    since = host_now(app)
    rc, result = run_drill(app)
    assert rc == 0, result
    assert result["ok"] is True and result["error"] == ""
    count = visit(app)
    # The restored copy holds every visit answered before the drill began.
    assert 20 <= result["restored_count"] <= result["live_count"] < count
    assert result["replica_txid"] > 0
    assert "Restore drill passed" in journal(app, since, f"{DRILL}.service")
    assert guard_status(app)["restore_drill"]["ok"] is True
    assert drill_metric(app) == 1
    # The app's account reads the outcome (its metrics do); nothing is left
    # behind but the result.
    assert app.run("runuser -u counter -- cat %s", RESULT).rc == 0
    assert app.check_output("ls /var/lib/%s", DRILL).split() == ["result.json"]
    assert app.file(RESULT).mode == 0o640


@pytest.mark.sftp
def test_a_damaged_replica_fails_the_drill_visibly(app, storage):
    """Damage every replica file a restore must start from (their first TXID
    is 1), as a faulty disk on the store would: the drill fails, the unit is
    failed, the result and the status say why. Put back, the next drill passes."""
    name = app_name(app)
    path = f"{sftp_upload_path(name)}/{name}"
    firsts = storage.check_output("find %s -type f -name '0000000000000001-*.ltx'", path).split()
    assert firsts, "the replica has files starting at TXID 1"
    storage.check_output("rm -rf /root/drill-saved && mkdir /root/drill-saved")
    try:
        for n, file in enumerate(firsts):
            storage.check_output("cp -p %s /root/drill-saved/%s", file, str(n))
            size = int(storage.check_output("stat -c %%s %s", file))
            storage.check_output(
                "head -c %s /dev/urandom | dd of=%s bs=1 seek=%s conv=notrunc status=none",
                str(max(64, size // 2)),
                file,
                str(min(100, size // 4)),
            )
        rc, result = run_drill(app)
        assert rc != 0
        assert result["ok"] is False and result["error"]
        assert unit_prop(app, f"{DRILL}.service", "ActiveState") == "failed"
        assert guard_status(app)["restore_drill"]["ok"] is False
        assert drill_metric(app) == 0
        # Serving and replicating go on: the drill only reports.
        assert app.service("counter").is_running
    finally:
        for n, file in enumerate(firsts):
            storage.check_output("cp -p /root/drill-saved/%s %s", str(n), file)
        storage.check_output("rm -rf /root/drill-saved")
    app.check_output(f"systemctl reset-failed {DRILL}.service")
    rc, result = run_drill(app)
    assert rc == 0 and result["ok"] is True, result
    assert drill_metric(app) == 1
