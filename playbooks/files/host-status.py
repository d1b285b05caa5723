#!/usr/bin/python3
"""Where one app host stands, as JSON on stdout (playbooks/status.yml runs it
as root on each host): the units' states, what litestream-guard reports
(local, replica and confirmed positions, the probe's value, the store, the
last restore drill) and the app's readiness answer (/healthz, whose text
says why when replication is down or behind); then the same, but readiness
(another app's own business), for each of the host's other databases
(litestream_databases, as `litestream-guard databases` lists them). Reads
only."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

UNITS = ["litestream.service", "counter.service", "litestream-restore-drill.timer"]
GUARD = "/usr/local/sbin/litestream-guard"


def run(*argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def units(names: list[str]) -> dict[str, str]:
    states = {}
    for unit in names:
        out = run("systemctl", "show", "-p", "ActiveState", "-p", "LoadState", unit)
        props = dict(line.partition("=")[::2] for line in out.stdout.splitlines())
        loaded = props.get("LoadState", "?")
        states[unit] = "not installed" if loaded == "not-found" else props.get("ActiveState", "?")
    return states


def guard(*database: str) -> dict:
    if not shutil.which(GUARD):
        return {"error": f"{GUARD} is not installed"}
    try:
        out = run(GUARD, *database, "status", timeout=60)
    except subprocess.TimeoutExpired:
        return {"error": "litestream-guard status did not answer within 60 s"}
    try:
        return json.loads(out.stdout)
    except ValueError:
        return {"error": (out.stderr or out.stdout).strip()[-300:] or f"exit {out.returncode}"}


def readiness() -> dict:
    env_files = run("systemctl", "show", "-p", "EnvironmentFiles", "--value", "counter.service")
    env: dict[str, str] = {}
    for entry in env_files.stdout.split("\n"):
        path = entry.split(" ")[0]
        try:
            for line in open(path, encoding="utf-8"):  # noqa: SIM115
                name, sep, value = line.strip().partition("=")
                if sep:
                    env[name] = value
        except OSError:
            continue
    if "COUNTER_PORT" not in env:
        return {"status": 0, "body": "the app's settings are not there"}
    host = env.get("COUNTER_HOST", "127.0.0.1")
    host = "127.0.0.1" if host in ("", "0.0.0.0", "*") else host  # noqa: S104
    url = f"http://{'[' + host + ']' if ':' in host else host}:{env['COUNTER_PORT']}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return {"status": answer.status, "body": answer.read(500).decode().strip()}
    except urllib.error.HTTPError as error:
        return {"status": error.code, "body": error.read(500).decode().strip()}
    except OSError as error:
        return {"status": 0, "body": str(error)}


def databases() -> dict[str, dict]:
    """Each other database (as `litestream-guard databases` lists them): its
    units (its Litestream, its app, its drill timer, in that order) and what
    the guard reports of it."""
    if not shutil.which(GUARD):
        return {}
    out = run(GUARD, "databases", timeout=30)
    try:
        listed = json.loads(out.stdout)
    except ValueError:
        return {"?": {"unit_names": [], "units": {}, "guard": {"error": out.stderr.strip()[-300:]}}}
    found = {}
    for db in listed:
        name = db["name"]
        if not name:  # the host's first: the rows above
            continue
        names = [
            db.get("unit") or f"litestream@{name}.service",
            db.get("app_unit") or "",
            f"litestream-restore-drill@{name}.timer",
        ]
        found[name] = {
            "unit_names": names,
            "units": units([unit for unit in names if unit]),
            "guard": guard("--database", name),
        }
    return found


def main() -> int:
    report = {"units": units(UNITS), "guard": guard(), "readiness": readiness()}
    print(json.dumps(report | {"databases": databases()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
