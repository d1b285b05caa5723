"""What a user does and looks at on a lab host: visits, readiness, units,
journal, the replica's count, and the project's playbooks run as a user runs
them. Hosts are reached with `docker exec` (testinfra's docker backend)."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import testinfra
import yaml
from testinfra.utils.ansible_runner import AnsibleRunner

import programs
from deployment import (
    APP_UNIT,
    CONFIG,
    DB,
    ENV_FILE,
    INVENTORY,
    LITESTREAM,
    LITESTREAM_UNIT,
    LITESTREAM_USER,
    PORT,
    PROJECT,
    VENV_PY,
    ansible_env,
    ansible_playbook,
)


def hosts(group: str) -> list[testinfra.host.Host]:
    """The inventory's hosts of a group, reached with docker exec."""
    runner = AnsibleRunner(INVENTORY)
    return [testinfra.get_host(f"docker://{name}") for name in runner.get_hosts(group)]


def app_name(host: testinfra.host.Host) -> str:
    return host.backend.name


def http_get(host, url: str) -> dict[str, Any]:
    """GET a URL from a host: {status (0: no answer), body}."""
    return json.loads(host.check_output("python3 -c %s %s", programs.text("http_get.py"), url))


def _listen(monitor, unit: str) -> str:
    """The address a unit of the monitoring host was deployed to listen on,
    as loopback reaches it."""
    args = monitor.file(f"/etc/default/{unit}").content_string
    address = re.search(r"--web\.listen-address=(\S+?)[\s\"]", args).group(1)
    host, port = address.rsplit(":", 1)
    return f"http://{'127.0.0.1' if host in ('', '0.0.0.0', '[::]') else host}:{port}"  # noqa: S104


def monitoring_api(monitor, unit: str, path: str) -> Any:
    """A JSON answer of Prometheus's (or Alertmanager's) API on the monitoring host."""
    answer = http_get(monitor, _listen(monitor, unit) + path)
    assert answer["status"] == 200, answer
    return json.loads(answer["body"])


def get(host, path: str = "/") -> dict[str, Any]:
    """GET a path of the app on the host's loopback."""
    return http_get(host, f"http://127.0.0.1:{PORT}{path}")


def visit(host) -> int:
    """GET / once; return the count it answered."""
    answer = get(host, "/")
    assert answer["status"] == 200, answer
    body = answer["body"]
    assert body.startswith("This server has been visited ") and body.endswith(" times.\n"), body
    return int(body.split()[5])


def concurrent_visits(host, n: int) -> list[int]:
    url = f"http://127.0.0.1:{PORT}/"
    out = host.check_output(
        "python3 -c %s %s %s", programs.text("concurrent_visits.py"), str(n), url
    )
    return sorted(int(body.split()[5]) for body in json.loads(out))


def healthy(host) -> bool:
    return get(host, "/healthz")["status"] == 200


def db_count(host, path: str) -> int:
    """The count a database file on the host holds."""
    return int(host.check_output("python3 -c %s %s", programs.text("db_count.py"), path))


def replica_count(host) -> int:
    """The count the replica holds: restored to a scratch file on the host."""
    args = (ENV_FILE, LITESTREAM_USER, LITESTREAM, CONFIG, DB, VENV_PY)
    return int(
        host.check_output(
            "bash -c %s - %s %s %s %s %s %s", programs.text("replica_count.sh"), *args
        )
    )


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


def unit_state(host, unit: str) -> str:
    """systemctl is-active: active, inactive, failed, activating, ..."""
    return host.run("systemctl is-active %s", unit).stdout.strip()


def unit_prop(host, unit: str, prop: str) -> str:
    return host.check_output("systemctl show -p %s --value %s", prop, unit)


def main_pid(host, unit: str) -> int:
    return int(unit_prop(host, unit, "MainPID"))


def replaced(host, unit: str, action: str, timeout: float = 30) -> int:
    """Run `action` (a command that ends the unit's process: a kill, a
    restart) and wait for the unit's next process; return its pid."""
    old = main_pid(host, unit)
    host.check_output(action)
    return wait_until(
        lambda: (pid := main_pid(host, unit)) not in (0, old) and pid,
        timeout=timeout,
        what=f"{unit}'s next process",
        interval=0.2,
    )


def host_now(host) -> str:
    return host.check_output("date +%s")


def journal(host, since: str, *units: str) -> str:
    flags = " ".join(f"-u {u}" for u in units)
    return host.check_output(f"journalctl --no-pager -o cat --since @{since} {flags}")


def start_until_said(host, text: str, timeout: float, what: str, times: int = 1) -> str:
    """`systemctl start --no-block` of the app (Litestream first, its guard
    before it), then wait until Litestream's journal says `text` (`times`
    times): what it said since the start."""
    since = host_now(host)
    host.check_output(f"systemctl start --no-block {APP_UNIT}")
    return wait_until(
        lambda: (
            said if (said := journal(host, since, LITESTREAM_UNIT)).count(text) >= times else ""
        ),
        timeout=timeout,
        what=what,
    )


def stop_app(host) -> None:
    """`systemctl stop counter` as a user types it, then wait for Litestream.

    The stop returns once the app has stopped; Litestream (stopped by the
    app's ExecStopPost) stops after it, once the replica holds the last write.
    Wait until it is done.
    """
    host.check_output(f"systemctl stop {APP_UNIT}")
    wait_until(
        lambda: unit_state(host, LITESTREAM_UNIT) in ("inactive", "failed"),
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


@functools.cache
def _mitogen_inventory() -> str:
    """An inventory that names each Molecule host's connection `docker`:
    Mitogen takes a connection over by that short name only, and Molecule
    writes `community.docker.docker`. Given after Molecule's, it wins."""
    inventory = yaml.safe_load(Path(INVENTORY).read_text())
    names = {
        name
        for group in inventory.values()
        if isinstance(group, dict)
        for name in (group.get("hosts") or {})
    }
    path = Path(tempfile.mkdtemp(prefix="counter-mitogen-")) / "inventory.yml"
    path.write_text(
        yaml.safe_dump({"all": {"hosts": {n: {"ansible_connection": "docker"} for n in names}}})
    )
    return str(path)


def run_site(
    extra_vars: dict,
    limit: str | None = None,
    playbook: str = "site.yml",
    tags: str | None = None,
    options: tuple[str, ...] = (),
) -> subprocess.CompletedProcess:
    """Run site.yml (or another of the project's playbooks) as a user would,
    with ansible.cfg's Mitogen strategy (Molecule's own runs, converge to
    check, use Ansible's linear one); tags limit it to one role's part, as
    `--tags` does for a user; options are more of ansible-playbook's (e.g.
    --check, --diff)."""
    env = dict(
        ansible_env(),
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
        ANSIBLE_STRATEGY_PLUGINS=str(PROJECT / "plugins" / "strategy"),
        ANSIBLE_STRATEGY="mitogen_linear",
    )
    return subprocess.run(
        [
            ansible_playbook(),
            "-i",
            INVENTORY,
            "-i",
            _mitogen_inventory(),
            str(PROJECT / playbook),
            "-e",
            json.dumps(extra_vars),
            *(["--limit", limit] if limit else []),
            *(["--tags", tags] if tags else []),
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        check=False,
    )


def status_table(output: str) -> str:
    """playbooks/status.yml's table as its debug task printed it (JSON result format)."""
    match = re.search(r'"msg": ("(?:[^"\\]|\\.)*")', output)
    assert match, output[-2000:]
    return json.loads(match.group(1))


def recap_changed(output: str) -> dict[str, int]:
    """changed= of each host in a play's recap ({} when there is no recap)."""
    return {m[0]: int(m[1]) for m in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", output, re.M)}
