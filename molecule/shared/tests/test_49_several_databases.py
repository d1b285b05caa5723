"""Several databases on one host: a second one, listed in
litestream_databases, gets its own Litestream (litestream@NAME.service) with
its own settings, guard state, control socket and timers. It replicates to
its own destination, is restored before its app starts when it is missing,
and its app's stop ends its own Litestream only: the counter and its
Litestream go on. Deployed as a user deploys it: site.yml with the list."""

from __future__ import annotations

import json

import pytest

from deployment import LITESTREAM_UNIT
from hosts import app_name, deployed_replica, healthy, run_site, visit, wait_until

NAME = "notes"
DIR = f"/var/lib/{NAME}"
DB = f"{DIR}/{NAME}.db"
UNIT = f"litestream@{NAME}.service"
APP = f"{NAME}.service"
TIMER = f"litestream-replica-check@{NAME}.timer"
CHECK = f"litestream-replica-check@{NAME}.service"
CHECK_RESULT = f"/var/lib/litestream-guard-{NAME}/replica.json"

# A second app: one row a second, checkpoints left to Litestream (a fixed
# program, not a query built from input).
WRITER = (
    "import sqlite3, time\n"  # noqa: S608 - a fixed program text, not a query from input
    f"db = sqlite3.connect({DB!r}, isolation_level=None)\n"
    "db.execute('PRAGMA wal_autocheckpoint=0')\n"
    "while True:\n"
    "    db.execute('INSERT INTO notes VALUES (CURRENT_TIMESTAMP)')\n"
    "    time.sleep(1)\n"
)
UNIT_FILE = f"""[Unit]
Description=A second app on this host, writing {DB}
[Service]
User={NAME}
Group={NAME}
ExecStart=/usr/bin/python3 /usr/local/lib/{NAME}-writer.py
"""


def rows(app) -> int:
    query = "SELECT count(*) FROM notes"
    code = f"import sqlite3; print(sqlite3.connect({DB!r}).execute({query!r}).fetchone()[0])"
    return int(app.check_output("python3 -c %s", code))


def _clean(app) -> None:
    """The second app and everything its deploy made, gone (its replica stays)."""
    app.run("systemctl stop %s", APP)
    app.run("systemctl disable --now %s %s litestream-restore-drill@%s.timer", UNIT, TIMER, NAME)
    paths = [
        f"/etc/systemd/system/{UNIT}",
        f"/etc/systemd/system/{UNIT}.d",
        f"/etc/systemd/system/{APP}",
        f"/etc/systemd/system/{APP}.d",
        f"/etc/litestream/{NAME}",
        f"/var/lib/litestream-guard-{NAME}",
        f"/var/lib/litestream-restore-drill-{NAME}",
        f"/etc/host-firewall/litestream_{NAME}.nft",
        f"/usr/local/lib/{NAME}-writer.py",
        DIR,
    ]
    # Fixed paths of this module, with a glob for the timers' units.
    app.run("rm -rf " + " ".join(paths) + f" /etc/systemd/system/litestream-*@{NAME}.*")
    app.run("nft delete table inet litestream_%s_ports", NAME)
    app.run("systemctl daemon-reload")
    app.run("userdel %s; groupdel %s", NAME, NAME)


@pytest.fixture(scope="module")
def second(app, storage):
    """The second app and its database on the first app host, then the deploy
    that adds it to litestream_databases; removed after."""
    app.check_output(
        "groupadd --system %s && useradd --system -g %s -s /usr/sbin/nologin %s", NAME, NAME, NAME
    )
    app.check_output("install -d -o %s -g %s -m 0770 %s", NAME, NAME, DIR)
    app.check_output(
        "runuser -u %s -- python3 -c %s",
        NAME,
        f"import sqlite3; db = sqlite3.connect({DB!r}); db.execute('PRAGMA journal_mode=WAL');"
        " db.execute('CREATE TABLE notes (at TEXT)')",
    )
    app.check_output("printf %%s %s > /usr/local/lib/%s-writer.py", WRITER, NAME)
    app.check_output(
        "printf %%s %s > /etc/systemd/system/%s && systemctl daemon-reload", UNIT_FILE, APP
    )
    replica = deployed_replica(app)
    replica["path"] = replica["path"].rstrip("/") + f"-{NAME}"
    database = {
        "name": NAME,
        "db_path": DB,
        "db_group": NAME,
        "bound_unit": APP,
        "replica": replica,
        "metrics_addr": "127.0.0.1:9392",
    }
    try:
        result = run_site(
            {"litestream_databases": [database]}, limit=f"{app_name(app)},{app_name(storage)}"
        )
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        app.check_output("systemctl start %s", APP)
        yield database
    finally:
        _clean(app)


def test_the_second_database_has_its_own_litestream(app, second):
    assert app.service(UNIT).is_running
    assert app.service(APP).is_running
    assert app.service(LITESTREAM_UNIT).is_running
    assert app.file(f"/etc/litestream/{NAME}/litestream.yml").exists
    assert app.socket(f"unix:///run/litestream-{NAME}/litestream.sock").is_listening
    assert app.service(TIMER).is_running


def test_its_writes_reach_its_own_replica(app, second):
    def checked() -> dict:
        app.check_output("systemctl start %s", CHECK)
        return json.loads(app.file(CHECK_RESULT).content_string)

    result = wait_until(
        lambda: (r := checked())["restorable"] and r["replicated_txid"] > 1 and r, 60, "replicated"
    )
    assert result["destination"].endswith(f"-{NAME}"), result


def test_its_apps_stop_ends_its_own_litestream_only(app, second):
    count = visit(app)
    app.check_output("systemctl stop %s", APP)
    wait_until(lambda: not app.service(UNIT).is_running, 60, f"{UNIT} stopped after {APP}")
    assert app.service(LITESTREAM_UNIT).is_running
    assert visit(app) == count + 1
    app.check_output("systemctl start %s", APP)
    assert app.service(UNIT).is_running


def test_a_lost_second_database_is_restored_before_its_app_starts(app, second):
    app.check_output("systemctl stop %s", APP)
    wait_until(lambda: not app.service(UNIT).is_running, 60, f"{UNIT} stopped (final sync)")
    written = rows(app)
    assert written > 0
    app.check_output("rm -f %s %s-wal %s-shm", DB, DB, DB)
    app.check_output("systemctl start %s", APP)
    assert app.service(UNIT).is_running
    assert rows(app) >= written
    assert "Restored" in app.check_output("journalctl -u %s -n 40 --no-pager", UNIT)
    wait_until(lambda: healthy(app), 60, "the counter still ready")
