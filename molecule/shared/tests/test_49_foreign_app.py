"""An app nobody here wrote, next to the counter: sqlite-web (a SQLite web
app from PyPI) on the first app host, its database replicated as one more of
litestream_databases, deployed as a user deploys it: the collection built,
installed from its tarball, and a playbook of the user's own
(molecule/shared/foreign_app/site.yml) run with no path into this repository.

The second database gets its own Litestream (litestream@NAME.service) with
its own settings, guard state, control socket and timers, and replicates to
its own destination. What is written through sqlite-web's own web interface
survives the loss of its database (restored before the app starts); a
rolled-back file is refused; its app's stop ends its own Litestream only:
the counter and its Litestream go on."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.parse
import uuid
from pathlib import Path

import pytest

import programs
from deployment import GUARD_METRICS_PORT, INVENTORY, LITESTREAM_UNIT, PROJECT
from hosts import (
    app_name,
    deployed_replica,
    healthy,
    host_now,
    hosts,
    http_get,
    journal,
    main_pid,
    monitoring_api,
    run_site,
    status_table,
    visit,
    wait_until,
)

NAME = "notes"
DIR = f"/var/lib/{NAME}"
DB = f"{DIR}/{NAME}.db"
UNIT = f"litestream@{NAME}.service"
APP = f"{NAME}.service"
TIMER = f"litestream-replica-check@{NAME}.timer"
CHECK = f"litestream-replica-check@{NAME}.service"
CHECK_RESULT = f"/var/lib/litestream-guard-{NAME}/replica.json"
DRILL = f"litestream-restore-drill@{NAME}.service"
WEB = "http://127.0.0.1:8090"
USER_SITE = Path(__file__).resolve().parents[1] / "foreign_app" / "site.yml"
COPY = "/var/tmp/notes-rolled-back"  # noqa: S108 - on a test host


def _galaxy() -> str:
    return str(Path(sys.executable).with_name("ansible-galaxy"))


def _clean_env(scratch: Path, collections: Path) -> dict[str, str]:
    """Ansible as a user of the tarball has it: none of this repository's
    settings or paths (Molecule's ANSIBLE_* included), the installed
    collection only."""
    (scratch / "ansible.cfg").write_text(
        "[defaults]\ninterpreter_python = auto_silent\n[connection]\npipelining = True\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    return env | {
        "ANSIBLE_CONFIG": str(scratch / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(scratch / "no-roles"),
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
    }


def _install_collection(scratch: Path) -> Path:
    """`ansible-galaxy collection build` of this repository, then `install
    --offline` of the tarball: where it is installed."""
    installed = scratch / "collections"
    built = subprocess.run(
        [_galaxy(), "collection", "build", "--force", "--output-path", str(scratch), str(PROJECT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    tarball = next(scratch.glob("*.tar.gz"))
    done = subprocess.run(
        [
            _galaxy(),
            "collection",
            "install",
            "--offline",
            "--force",
            "-p",
            *map(str, (installed, tarball)),
        ],
        capture_output=True,
        text=True,
        env=_clean_env(scratch, installed),
        cwd=scratch,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (installed / "ansible_collections" / "counter" / "litestream" / "molecule").exists()
    return installed


def run_user_site(scratch: Path, collections: Path, extra_vars: dict, limit: str):
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i",
            INVENTORY,
            str(USER_SITE),
            "-e",
            json.dumps(extra_vars),
            "--limit",
            limit,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=_clean_env(scratch, collections),
        cwd=scratch,
        check=False,
    )


def note(app, text: str) -> dict:
    """Write a note through sqlite-web's own insert form."""
    return json.loads(
        app.check_output(
            "python3 -c %s %s %s",
            programs.text("http_post_form.py"),
            f"{WEB}/{NAME}/insert/",
            f"body={text}",
        )
    )


def shown(app) -> str:
    """The notes table as sqlite-web's content page shows it."""
    answer = json.loads(
        app.check_output(
            "python3 -c %s %s", programs.text("http_get.py"), f"{WEB}/{NAME}/content/?page=1"
        )
    )
    assert answer["status"] == 200, answer
    return answer["body"]


def serving(app) -> bool:
    answer = json.loads(
        app.check_output("python3 -c %s %s", programs.text("http_get.py"), f"{WEB}/")
    )
    return answer["status"] == 200


def stop_notes(app) -> None:
    """`systemctl stop notes`, then wait for its Litestream's final sync."""
    app.check_output("systemctl stop %s", APP)
    wait_until(
        lambda: app.run("systemctl is-active %s", UNIT).stdout.strip() in ("inactive", "failed"),
        70,
        f"{UNIT} stopped after {APP}",
        interval=0.5,
    )


def start_notes(app) -> None:
    app.check_output("systemctl start %s", APP)
    wait_until(lambda: serving(app), 60, "sqlite-web answers")


def _clean(app) -> None:
    """sqlite-web and everything its deploy made, gone (its replica stays)."""
    app.run(
        "systemctl disable --now %s %s %s litestream-restore-drill@%s.timer", APP, UNIT, TIMER, NAME
    )
    paths = [
        f"/etc/systemd/system/{UNIT}",
        f"/etc/systemd/system/{UNIT}.d",
        f"/etc/systemd/system/{APP}",
        f"/etc/systemd/system/{APP}.d",
        f"/etc/litestream/{NAME}",
        f"/var/lib/litestream-guard-{NAME}",
        f"/var/lib/litestream-restore-drill-{NAME}",
        f"/etc/host-firewall/litestream_{NAME}.nft",
        "/opt/sqlite-web",
        COPY,
        DIR,
    ]
    # Fixed paths of this module, with a glob for the timers' units.
    app.run("rm -rf " + " ".join(paths) + f" /etc/systemd/system/litestream-*@{NAME}.*")
    app.run("nft delete table inet litestream_%s_ports", NAME)
    app.run("systemctl daemon-reload")
    app.run("userdel %s; groupdel %s", NAME, NAME)


@pytest.fixture(scope="module")
def sqlite_web(app, storage, tmp_path_factory):
    """sqlite-web on the first app host, its database in litestream_databases,
    deployed by the user's playbook from the installed tarball; removed after."""
    scratch = tmp_path_factory.mktemp("user")
    collections = _install_collection(scratch)
    replica = deployed_replica(app)
    replica["path"] = replica["path"].rstrip("/") + f"-{NAME}"
    database = {
        "name": NAME,
        "db_path": DB,
        "db_group": NAME,
        "bound_unit": APP,
        "replica": replica,
        "metrics_addr": "127.0.0.1:9392",
        "restore_drill_probe": "SELECT coalesce(max(id), 0) FROM notes",
    }
    try:
        result = run_user_site(
            scratch,
            collections,
            {"litestream_databases": [database], "sqlite_web_hosts": app_name(app)},
            limit=f"{app_name(app)},{app_name(storage)}",
        )
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        wait_until(lambda: serving(app), 60, "sqlite-web answers")
        yield database
    finally:
        _clean(app)


def test_the_second_database_has_its_own_litestream(app, sqlite_web):
    assert app.service(UNIT).is_running
    assert app.service(APP).is_running
    assert app.service(LITESTREAM_UNIT).is_running
    assert app.file(f"/etc/litestream/{NAME}/litestream.yml").exists
    assert app.socket(f"unix:///run/litestream-{NAME}/litestream.sock").is_listening
    assert app.service(TIMER).is_running
    # What the role checks of an app's database holds for this one.
    assert app.file(DB).content[18:20] == b"\x02\x02", "WAL mode"


def test_notes_written_through_its_web_interface_reach_its_own_replica(app, sqlite_web):
    written = note(app, "replicated")
    assert written["status"] == 302, written

    def checked() -> dict:
        app.check_output("systemctl start %s", CHECK)
        return json.loads(app.file(CHECK_RESULT).content_string)

    result = wait_until(
        lambda: (r := checked())["restorable"] and r["replicated_txid"] > 1 and r, 60, "replicated"
    )
    assert result["destination"].endswith(f"-{NAME}"), result


def test_its_apps_stop_ends_its_own_litestream_only(app, sqlite_web):
    count = visit(app)
    stop_notes(app)
    assert app.service(LITESTREAM_UNIT).is_running
    assert visit(app) == count + 1
    start_notes(app)
    assert app.service(UNIT).is_running


def test_its_lost_database_is_restored_before_it_starts(app, sqlite_web):
    text = f"kept-{uuid.uuid4().hex[:8]}"
    assert note(app, text)["status"] == 302
    stop_notes(app)
    app.check_output("rm -f %s %s-wal %s-shm", DB, DB, DB)
    since = host_now(app)
    start_notes(app)
    assert text in shown(app), "the note written before the loss is back"
    assert "Restored" in journal(app, since, UNIT)
    wait_until(lambda: healthy(app), 60, "the counter still ready")


def test_a_rolled_back_database_is_refused(app, sqlite_web):
    stop_notes(app)
    app.check_output("rm -rf %s && cp -a %s %s", COPY, DIR, COPY)
    start_notes(app)
    later = f"later-{uuid.uuid4().hex[:8]}"
    assert note(app, later)["status"] == 302
    stop_notes(app)
    # What a VM snapshot revert does: the older directory back (the
    # database and Litestream's state beside it).
    app.check_output("rm -rf %s && cp -a %s %s", DIR, COPY, DIR)
    since = host_now(app)
    app.check_output("systemctl start --no-block %s", APP)
    said = wait_until(
        lambda: s if "REFUSED" in (s := journal(app, since, UNIT)) else "",
        60,
        "the guard refuses the rolled-back file",
    )
    assert "Starting would roll the replica back" in said, said
    assert f"`litestream-guard --database {NAME} restore-from-replica`" in said, said
    assert not serving(app), "nothing serves the old file"
    assert app.service(LITESTREAM_UNIT).is_running, "the counter's Litestream goes on"
    # The operator's way out, for this database: the replica's state back
    # (the guard stops both units, keeps the local files aside, starts the app).
    out = app.check_output("litestream-guard --database %s restore-from-replica", NAME)
    aside = re.search(r"kept in (\S+)", out).group(1)
    wait_until(lambda: serving(app), 60, "sqlite-web answers after the restore")
    assert later in shown(app), "the note the replica holds is back"
    app.check_output("rm -rf %s %s", aside, COPY)


def test_status_shows_it_as_a_row_of_its_own(app, sqlite_web):
    result = run_site({}, playbook="playbooks/status.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    table = status_table(result.stdout)
    (row,) = [line for line in table.splitlines() if line.startswith(f"{app_name(app)}/{NAME} ")]
    cells = row.split()
    assert cells[1:4] == ["active", "active", "active"], row
    assert int(cells[4]) >= 1, "its probe: the newest note's id"
    assert cells[8] == "-" and "reachable" in row, row


@pytest.mark.monitoring
def test_the_guard_reports_it_for_the_alerts(app, sqlite_web):
    """sqlite-web exports nothing of its replication: the guard's metrics
    say it for every database of the host (the replica check's and the
    restore drill's results, Litestream's position), and Prometheus scrapes
    them with the database named, for the alerts."""
    app.check_output("systemctl start %s", CHECK)
    app.check_output("systemctl start %s", DRILL)  # a oneshot: returns when the drill is done
    scraped = http_get(app, f"http://127.0.0.1:{GUARD_METRICS_PORT}/metrics")
    assert scraped["status"] == 200, scraped
    samples = set(scraped["body"].splitlines())
    for name in ("replication_up", "replica_restorable", "restore_drill_success"):
        assert f'litestream_guard_{name}{{database="{NAME}"}} 1' in samples, name
    assert 'litestream_guard_replication_up{database=""} 1' in samples, "the host's first too"
    assert http_get(app, f"http://127.0.0.1:{GUARD_METRICS_PORT}/debug/pprof/")["status"] == 404

    monitor = hosts("monitoring")[0]
    query = f'litestream_guard_restore_drill_success{{database="{NAME}"}}'
    path = "/api/v1/query?query=" + urllib.parse.quote(query)

    def scraped_by_prometheus() -> dict:
        result = monitoring_api(monitor, "prometheus", path)["data"]["result"]
        return {r["metric"]["host"]: r["value"][1] for r in result}

    found = wait_until(
        lambda: (f := scraped_by_prometheus()).get(app_name(app)) == "1" and f,
        60,
        "Prometheus has the drill's result of the database",
    )
    assert found[app_name(app)] == "1"


@pytest.mark.once
def test_a_restore_names_the_database_and_leaves_the_counter_alone(app, sqlite_web):
    text = f"restored-{uuid.uuid4().hex[:8]}"
    assert note(app, text)["status"] == 302
    counter_litestream = main_pid(app, LITESTREAM_UNIT)
    # The inventory names the host's databases (here as the deploy had them).
    listed = {"litestream_databases": [sqlite_web], "restore_hosts": app_name(app)}
    result = run_site(
        listed | {"restore_latest": True, "restore_database": NAME},
        playbook="playbooks/restore.yml",
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    wait_until(lambda: serving(app), 60, "sqlite-web answers after the restore")
    assert text in shown(app), "the latest state: the note written before"
    assert main_pid(app, LITESTREAM_UNIT) == counter_litestream, "the counter's is untouched"
    # Unknown to a host: refused before anything is touched.
    refused = run_site(
        listed | {"restore_latest": True, "restore_database": "wiki"},
        playbook="playbooks/restore.yml",
    )
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0, said[-2000:]
    assert "has no database wiki" in said, said[-2000:]
    # The swap kept the live files aside: the restore did act on this database.
    asides = app.check_output("ls -d %s.aside-* 2>/dev/null || true", DB).split()
    assert asides, f"no {DB}.aside-* left by the swap"
    for aside in asides:
        app.run("rm -rf %s", aside)


# Last of the module: its database is taken off the list.
@pytest.mark.once
def test_a_database_dropped_from_the_list_is_refused_then_removed_when_named(
    app, storage, sqlite_web
):
    """The lab's own site.yml does not list sqlite-web's database: a deploy
    refuses to leave its Litestream behind without a word, changing nothing;
    named in litestream_databases_removed, its Litestream stops (final sync)
    and its units, settings and state go. Its database and its app stay."""
    limit = f"{app_name(app)},{app_name(storage)}"
    pid = main_pid(app, UNIT)
    refused = run_site({}, limit=limit, tags="litestream_preflight")
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0, said[-3000:]
    assert f"runs {UNIT} for a database litestream_databases no longer lists" in said, said[-3000:]
    assert main_pid(app, UNIT) == pid, "nothing changed"

    removed = run_site({"litestream_databases_removed": [NAME]}, limit=limit, tags="litestream")
    assert removed.returncode == 0, removed.stdout[-4000:] + removed.stderr[-2000:]
    assert app.run("systemctl is-active %s", UNIT).stdout.strip() != "active"
    for path in (
        f"/etc/systemd/system/{UNIT}",
        f"/etc/systemd/system/{APP}.d/litestream-{NAME}.conf",
        f"/etc/litestream/{NAME}",
        f"/var/lib/litestream-guard-{NAME}",
    ):
        assert not app.file(path).exists, path
    assert serving(app), "its app runs on"
    assert app.file(DB).exists, "its database stays"
    scraped = http_get(app, f"http://127.0.0.1:{GUARD_METRICS_PORT}/metrics")
    assert f'database="{NAME}"' not in scraped["body"]
    assert healthy(app), "the counter goes on"
