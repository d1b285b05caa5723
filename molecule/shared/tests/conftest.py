"""What a user checks on a deployed lab: fixtures and helpers.

Hosts come from Molecule's inventory by group (counter_app, sftp_storage) and
are reached with `docker exec` (testinfra's docker backend), which is fast
enough to run the lifecycle drills. Paths, ports, versions and the replica
type are read through Ansible (settings.yml: the roles' defaults and the
inventory), never restated here.

Which tests a scenario runs is declared, not discovered: tests that need one
replica type or two app hosts carry a marker (sftp, s3, fleet, install,
monitoring, drill) and each scenario's molecule.yml selects markers (pytest -m); a test
that skips fails the run, since it would never run anywhere.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import testinfra
import yaml
from testinfra.utils.ansible_runner import AnsibleRunner

# Playbook runs from the tests, against Molecule's inventory.
PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])


def _ansible_env() -> dict[str, str]:
    return dict(
        os.environ,
        ANSIBLE_ROLES_PATH=str(PROJECT / "roles"),
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
    )


def _ansible_playbook() -> str:
    return str(Path(sys.executable).with_name("ansible-playbook"))


def _read_settings() -> dict[str, Any]:
    """The deployment's settings as Ansible sees them (settings.yml)."""
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "settings.json"
        result = subprocess.run(
            [
                _ansible_playbook(),
                "-i",
                os.environ["MOLECULE_INVENTORY_FILE"],
                str(Path(__file__).with_name("settings.yml")),
                "-e",
                json.dumps({"settings_file": str(target)}),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=_ansible_env(),
            check=False,
        )
        if result.returncode != 0:
            said = result.stdout[-3000:] + result.stderr[-2000:]
            raise RuntimeError(f"settings.yml failed:\n{said}")
        return json.loads(target.read_text())


SETTINGS = _read_settings()
DB = SETTINGS["counter_db_path"]
DATA = str(Path(DB).parent)
CONFIG = SETTINGS["litestream_config_path"]
LITESTREAM = SETTINGS["litestream_binary_path"]
VENV_PY = SETTINGS["counter_venv_python"]
PORT = int(SETTINGS["counter_port"])
IDLE_TIMEOUT = int(SETTINGS["counter_idle_timeout"])
USER = SETTINGS["counter_user"]
GROUP = SETTINGS["counter_group"]
LITESTREAM_USER = SETTINGS["litestream_user"]
LITESTREAM_GROUP = SETTINGS["litestream_group"]
ENV_FILE = SETTINGS["litestream_env_file"]
STORE = SETTINGS["store"]
APP_UNIT = SETTINGS["counter_unit"]
LITESTREAM_UNIT = SETTINGS["litestream_published"]["unit"]
GUARD = SETTINGS["litestream_published"]["guard"]

_VISIT = r"""
import json, sys, urllib.request, urllib.error
url = sys.argv[1]
try:
    with urllib.request.urlopen(url, timeout=10) as r:
        print(json.dumps({"status": r.status, "body": r.read().decode()}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": e.read().decode()}))
except OSError as e:
    print(json.dumps({"status": 0, "body": str(e)}))
"""

_CONCURRENT = r"""
import json, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
n = int(sys.argv[1])
def get(_):
    with urllib.request.urlopen(sys.argv[2], timeout=60) as r:
        return r.read().decode()
with ThreadPoolExecutor(max_workers=n) as pool:
    print(json.dumps(list(pool.map(get, range(n)))))
"""

# Restore the replica to a scratch file as Litestream's account (with the
# unit's credentials, if any) and print the count it holds: proof that the
# replica, not the local file, has the data.
_REPLICA_COUNT = r"""
set -e
out=$(mktemp -u /var/tmp/replica-check.XXXXXX.db)
set -a; [ ! -r {env_file} ] || . {env_file}; set +a
runuser -u {user} -- {litestream} restore \
    -config {config} -o "$out" {db} >&2
{py} -c 'import apsw, sys
print(apsw.Connection(sys.argv[1]).execute("SELECT count FROM visits").fetchone()[0])' "$out"
rm -f "$out" "$out-wal" "$out-shm"
"""


# ListObjectsV2 through the S3 API, run on the app host (see s3_list.py).
_S3_LIST = (Path(__file__).parent / "s3_list.py").read_text()


def _hosts(group: str) -> list[testinfra.host.Host]:
    runner = AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
    return [testinfra.get_host(f"docker://{name}") for name in runner.get_hosts(group)]


@pytest.fixture(scope="session")
def apps() -> list[testinfra.host.Host]:
    return _hosts("counter_app")


@pytest.fixture(scope="session")
def app(apps) -> testinfra.host.Host:
    return apps[0]


@pytest.fixture(scope="session")
def replica_kind() -> str:
    """The replica type the scenario deploys: sftp or s3."""
    return SETTINGS["replica_type"]


@pytest.fixture(scope="session")
def storage(replica_kind) -> testinfra.host.Host:
    return _hosts(f"{replica_kind}_storage")[0]


@pytest.fixture(scope="session")
def store_service(replica_kind) -> str:
    """The unit that serves the replica store on the storage host."""
    return {"sftp": "ssh.service", "s3": "seaweedfs.service"}[replica_kind]


def replica_objects(app, storage, replica_kind) -> list[str]:
    """What the store holds for this app host: files on the SFTP server, or
    objects listed through the S3 API."""
    name = app_name(app)
    if replica_kind == "sftp":
        upload = sftp_upload_path(name)
        found = storage.check_output("find %s -type f -name '*.ltx'", f"{upload}/{name}").split()
        return [f[len(upload) + 1 :] for f in found]
    bucket = (STORE["s3_endpoint"], STORE["s3_bucket"])
    return app.check_output(
        "python3 -c %s %s %s %s %s", _S3_LIST, ENV_FILE, *bucket, f"{name}/"
    ).split()


def delete_replica_objects(app, storage, replica_kind, pattern: str) -> list[str]:
    """Delete this app host's replica files whose name matches the regex
    (damage the replica as a faulty store or a careless hand would)."""
    name = app_name(app)
    if replica_kind == "sftp":
        path = f"{sftp_upload_path(name)}/{name}"
        found = storage.check_output(
            "find %s -type f -regextype posix-extended -regex %s -print -delete",
            path,
            f".*{pattern}.*",
        ).split()
        return found
    return app.check_output(
        "python3 -c %s %s %s %s %s %s",
        _S3_LIST,
        ENV_FILE,
        STORE["s3_endpoint"],
        STORE["s3_bucket"],
        f"{name}/",
        pattern,
    ).split()


def s3_request(
    host, env_file: str, method: str, path: str, query: dict | None = None, body: str = ""
) -> dict[str, Any]:
    """One signed S3 request from an app host, with the keys in env_file
    (Litestream's environment-file shape), over HTTPS checked against the
    host's trust store: {status, code (the S3 error code), body}."""
    out = host.check_output(
        "python3 -c %s request %s %s %s %s %s %s",
        _S3_LIST,
        env_file,
        STORE["s3_endpoint"],
        method,
        path,
        json.dumps(query or {}),
        body,
    )
    return json.loads(out)


def write_s3_env_file(host, path: str, access_key_id: str, secret_access_key: str) -> None:
    """Keys in Litestream's environment-file shape, root only, on a host."""
    host.check_output("install -m 0600 /dev/null %s", path)
    host.check_output(
        "printf '%%s\\n' %s %s > %s",
        f"LITESTREAM_ACCESS_KEY_ID='{access_key_id}'",
        f"LITESTREAM_SECRET_ACCESS_KEY='{secret_access_key}'",
        path,
    )


def s3_identities(storage) -> dict[str, dict[str, Any]]:
    """The store's identities by name, as its identities file holds them."""
    data = json.loads(storage.check_output("cat %s", STORE["s3_identities_file"]))
    return {identity["name"]: identity for identity in data["identities"]}


def sftp_account(name: str) -> str:
    """The SFTP account of an app host (one per client)."""
    return STORE["sftp_accounts"][name]


def sftp_upload_path(name: str) -> str:
    """Where the SFTP store keeps an app host's replicas, on the storage host."""
    return f"{STORE['sftp_root']}/{sftp_account(name)}/{STORE['sftp_upload_dir']}"


def app_name(host: testinfra.host.Host) -> str:
    return host.backend.name


def get(host, path: str = "/") -> dict[str, Any]:
    out = host.check_output("python3 -c %s %s", _VISIT, f"http://127.0.0.1:{PORT}{path}")
    return json.loads(out)


def visit(host) -> int:
    """GET / once; return the count it answered."""
    answer = get(host, "/")
    assert answer["status"] == 200, answer
    body = answer["body"]
    assert body.startswith("This server has been visited ") and body.endswith(" times.\n"), body
    return int(body.split()[5])


def concurrent_visits(host, n: int) -> list[int]:
    url = f"http://127.0.0.1:{PORT}/"
    bodies = json.loads(host.check_output("python3 -c %s %s %s", _CONCURRENT, str(n), url))
    return sorted(int(body.split()[5]) for body in bodies)


def replica_count(host) -> int:
    script = _REPLICA_COUNT.format(
        config=CONFIG,
        db=DB,
        py=VENV_PY,
        env_file=ENV_FILE,
        user=LITESTREAM_USER,
        litestream=LITESTREAM,
    )
    return int(host.check_output("bash -c %s", script))


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as error:  # noqa: BLE001 - retried until the deadline
            last = error
        time.sleep(interval)
    raise AssertionError(f"{what}: not true after {timeout} s (last: {last!r})")


def unit_prop(host, unit: str, prop: str) -> str:
    return host.check_output("systemctl show -p %s --value %s", prop, unit)


def main_pid(host, unit: str) -> int:
    return int(unit_prop(host, unit, "MainPID"))


def host_now(host) -> str:
    return host.check_output("date +%s")


def journal(host, since: str, *units: str) -> str:
    flags = " ".join(f"-u {u}" for u in units)
    return host.check_output(f"journalctl --no-pager -o cat --since @{since} {flags}")


def stop_app(host) -> None:
    """`systemctl stop counter` as a user types it, then wait for Litestream.

    The stop returns once the app has stopped; Litestream (stopped by the
    app's ExecStopPost) stops after it, once the replica holds the last write.
    Wait until it is done.
    """
    host.check_output(f"systemctl stop {APP_UNIT}")
    wait_until(
        lambda: (
            host.run(f"systemctl is-active {LITESTREAM_UNIT}").stdout.strip()
            in ("inactive", "failed")
        ),
        timeout=70,
        what=f"{LITESTREAM_UNIT} stopped after the app",
        interval=0.5,
    )


def deployed_replica(host) -> dict[str, Any]:
    """The host's replica as a user would give it in litestream_replica: the
    deployed configuration's, with the secrets from the environment file."""
    (database,) = yaml.safe_load(host.file(CONFIG).content_string)["dbs"]
    replica = dict(database["replica"])
    if host.file(ENV_FILE).exists:
        env = dict(re.findall(r"^(\w+)='(.*)'$", host.file(ENV_FILE).content_string, re.M))
        for key, value in replica.items():
            if isinstance(value, str) and value.startswith("${"):
                replica[key] = env[value[2:-1]]
    return replica


def remove_database(host) -> None:
    """The database, its WAL and Litestream's state beside it: gone, as on a
    new disk."""
    db = Path(DB)
    host.check_output("rm -rf %s %s-* %s", DB, DB, f"{db.parent}/.{db.name}-litestream")


def healthy(host) -> bool:
    return get(host, "/healthz")["status"] == 200


@pytest.fixture(autouse=True)
def serving(apps):
    """Every test starts from the state a user expects after a deploy: each
    app host serving and ready (both units running, replica current),
    whatever the test before it left."""
    for host in apps:
        if get(host, "/healthz")["status"] != 200:
            host.run("systemctl start %s", APP_UNIT)
            wait_until(lambda host=host: healthy(host), 180, f"{app_name(host)} ready")
    return apps


@pytest.fixture
def stopped_app(app, serving):
    """The app stopped as a user stops it (Litestream stops after it)."""
    stop_app(app)
    return app


@pytest.fixture(autouse=True)
def journal_on_failure(app):
    """On failure, show what the units said (as a user would look next)."""
    yield
    # pytest prints captured output only for failures.
    print(app.run("journalctl --no-pager -n 60 -u litestream -u counter").stdout)


def run_site(
    extra_vars: dict,
    limit: str | None = None,
    playbook: str = "site.yml",
    tags: str | None = None,
) -> subprocess.CompletedProcess:
    """Run site.yml (or another of the project's playbooks) as a user would;
    tags limit it to one role's part, as `--tags` does for a user."""
    env = dict(_ansible_env(), ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    return subprocess.run(
        [
            _ansible_playbook(),
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            str(PROJECT / playbook),
            "-e",
            json.dumps(extra_vars),
            *(["--limit", limit] if limit else []),
            *(["--tags", tags] if tags else []),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        check=False,
    )


def recap_changed(output: str) -> dict[str, int]:
    return {m[0]: int(m[1]) for m in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", output, re.M)}


def docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args],  # noqa: S607 - the Docker CLI on the controller's PATH
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout.strip()


class StorePaused:
    """A real partition of the store: `docker pause` of the storage host
    (its processes freeze; open connections hang, new ones time out)."""

    def __init__(self, storage) -> None:
        self.name = app_name(storage)

    def __enter__(self) -> StorePaused:
        docker("pause", self.name)
        return self

    def __exit__(self, *exc) -> None:
        docker("unpause", self.name)


# A steady load on the app host: THREADS workers, about RATE requests/s in
# all, until the stop file appears or the deadline passes. Prints what it saw:
# requests answered and failed, and the highest count acknowledged.
_LOAD = r"""
import json, os, sys, threading, time, urllib.request
rate, threads, seconds = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
out, url = sys.argv[4], sys.argv[5]
stop_file = out + ".stop"
deadline = time.monotonic() + seconds
lock = threading.Lock()
seen = {"ok": 0, "failed": 0, "max_ack": 0, "errors": []}
def worker():
    gap = threads / rate
    while time.monotonic() < deadline and not os.path.exists(stop_file):
        started = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                n = int(r.read().decode().split()[5])
            with lock:
                seen["ok"] += 1
                seen["max_ack"] = max(seen["max_ack"], n)
        except (OSError, ValueError, IndexError) as e:
            with lock:
                seen["failed"] += 1
                if len(seen["errors"]) < 5:
                    seen["errors"].append(str(e))
        time.sleep(max(0.0, gap - (time.monotonic() - started)))
pool = [threading.Thread(target=worker) for _ in range(threads)]
for t in pool: t.start()
for t in pool: t.join()
with open(out + ".tmp", "w") as f: json.dump(seen, f)
os.replace(out + ".tmp", out)
"""


class Load:
    """~rate requests/s, bounded in time: from the app host itself to its
    loopback, or from another lab host (``source``) to the app host."""

    def __init__(
        self, host, rate: int = 100, threads: int = 4, seconds: int = 900, source=None
    ) -> None:
        self.host = source or host
        self.out = f"/var/tmp/load-{time.monotonic_ns()}.json"  # noqa: S108 - on a test host
        url = f"http://{app_name(host) if source else '127.0.0.1'}:{PORT}/"
        self.args = (str(rate), str(threads), str(seconds), self.out, url)

    def __enter__(self) -> Load:
        self.host.check_output(
            "nohup setsid python3 -c %s %s %s %s %s %s >/dev/null 2>&1 &", _LOAD, *self.args
        )
        return self

    def stop(self) -> dict:
        self.host.check_output("touch %s.stop", self.out)
        wait_until(
            lambda: self.host.file(self.out).exists, timeout=30, what="load stopped", interval=0.5
        )
        result = json.loads(self.host.file(self.out).content_string)
        self.host.run("rm -f %s %s.stop", self.out, self.out)
        return result

    def __exit__(self, *exc) -> None:
        if not self.host.file(self.out).exists:
            self.host.run("touch %s.stop", self.out)


def unavailable_seconds(host, action: str, timeout: float = 60) -> float:
    """Run `action` on the host, then time until / answers again."""
    started = time.monotonic()
    host.check_output(action)
    wait_until(lambda: get(host, "/livez")["status"] == 200, timeout, "serving again", 0.1)
    return time.monotonic() - started


# Figures measured by the drills, written where COUNTER_DRILL_FIGURES says
# (make drills renders them as a table).
@pytest.fixture(scope="session")
def figures(request):
    found: dict[str, Any] = {}
    yield found
    path = os.environ.get("COUNTER_DRILL_FIGURES")
    if path and found:
        scenario = os.environ.get("MOLECULE_SCENARIO_NAME", "?")
        suite = os.environ.get("MOLECULE_SUITE", "bookworm")
        target = Path(path)
        data = json.loads(target.read_text()) if target.exists() else {}
        data.setdefault(f"{scenario}/{suite}", {}).update(found)
        target.write_text(json.dumps(data, indent=2) + "\n")


def long_drills() -> bool:
    return os.environ.get("COUNTER_DRILLS") == "long"


# Which tests run where is declared: these markers, selected per scenario by
# `-m` in its molecule.yml (verifier options); `drill` only by `make drills`.
MARKERS = {
    "sftp": "needs the SFTP replica (scenario default)",
    "s3": "needs the S3 replica (scenario s3)",
    "fleet": "needs two app hosts (scenario s3)",
    "install": "Litestream install and upgrade drills, once per Debian release (scenario default)",
    "drill": "long fault drill under load, with figures (make drills)",
    "monitoring": "needs a monitoring host (scenario default)",
}


def pytest_configure(config) -> None:
    for name, meaning in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {meaning}")


def pytest_collection_modifyitems(config, items) -> None:
    if long_drills():
        return
    drills = [item for item in items if item.get_closest_marker("drill")]
    if drills:
        config.hook.pytest_deselected(items=drills)
        items[:] = [item for item in items if not item.get_closest_marker("drill")]


_SKIPPED: list[str] = []


def pytest_runtest_logreport(report) -> None:
    if report.skipped:
        _SKIPPED.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus) -> None:
    """A skipped test is a test that may run nowhere: fail the run."""
    if _SKIPPED and exitstatus == 0:
        print(f"\nskipped tests (select them by marker instead): {_SKIPPED}", file=sys.stderr)
        session.exitstatus = 1
