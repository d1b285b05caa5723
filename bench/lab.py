"""The lab as the benchmark sees it: hosts reached with `docker exec`, load
generated from the controller inside an app host's network namespace
(nsenter), so requests go over the host's own loopback, not through Docker's
port proxy. Paths, ports and unit names come from Ansible (the roles'
defaults and the lab inventory, molecule/shared/tests/settings.yml), never
restated here."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from litestream_guard.sigv4 import signed

ROOT = Path(__file__).resolve().parents[1]
INVENTORY = ROOT / "inventory" / "lab"
APP_HOSTS = ("lab-app1", "lab-app2")
STORAGE_HOST = "lab-storage"
BIN = Path(sys.executable).parent


def run(
    args: list[str], *, timeout: float = 600, check: bool = True, **kwargs
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    if check and result.returncode != 0:
        said = (result.stdout[-2000:] + result.stderr[-2000:]).strip()
        raise RuntimeError(f"{' '.join(args[:6])}... exited {result.returncode}: {said}")
    return result


def sh(
    host: str, script: str, *, timeout: float = 600, check: bool = True, stdin: str | None = None
) -> str:
    """Run a shell script on a lab host as root; its stdout."""
    args = ["docker", "exec", *(["-i"] if stdin is not None else []), host, "sh", "-c", script]
    return run(args, timeout=timeout, check=check, input=stdin).stdout


def py(
    host: str, code: str, *args: str, python: str = "/usr/bin/python3", timeout: float = 600
) -> str:
    """Run Python code on a lab host as root (code on stdin); its stdout."""
    return run(
        ["docker", "exec", "-i", host, python, "-", *args], input=code, timeout=timeout
    ).stdout


@functools.cache
def host_pid(host: str) -> int:
    return int(run(["docker", "inspect", "-f", "{{.State.Pid}}", host]).stdout)


def in_netns(host: str, args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a controller program inside the host's network namespace."""
    return run(["nsenter", "-t", str(host_pid(host)), "-n", *args], **kwargs)


def deployed_replica_type(host: str = APP_HOSTS[0]) -> str:
    config = sh(host, "cat /etc/litestream.yml")  # the path is checked against settings below
    found = re.search(r"^\s+type:\s*(\w+)", config, re.MULTILINE)
    if not found:
        raise RuntimeError(f"no replica type in {host}'s Litestream configuration")
    return found.group(1)


@dataclass(frozen=True)
class Settings:
    raw: dict

    @property
    def replica_type(self) -> str:
        return self.raw["replica_type"]

    @property
    def db(self) -> str:
        return self.raw["counter_db_path"]

    @property
    def port(self) -> int:
        return int(self.raw["counter_port"])

    @property
    def app_unit(self) -> str:
        return self.raw["counter_unit"]

    @property
    def litestream_unit(self) -> str:
        return self.raw["litestream_published"]["unit"]

    @property
    def litestream_socket(self) -> str:
        return self.raw["litestream_published"]["socket"]

    @property
    def venv_python(self) -> str:
        return self.raw["counter_venv_python"]

    @property
    def env_file(self) -> str:
        return self.raw["counter_env_file"]


def read_settings() -> Settings:
    """The lab's settings as Ansible sees them, for the replica it runs."""
    replica = deployed_replica_type()
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "settings.json"
        run(
            [
                str(BIN / "ansible-playbook"),
                "-i",
                str(INVENTORY),
                str(ROOT / "molecule" / "shared" / "tests" / "settings.yml"),
                "-e",
                json.dumps({"settings_file": str(target), "lab_replica": replica}),
            ],
            env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1"),
        )
        return Settings(json.loads(target.read_text()))


def visit(host: str, port: int, path: str = "/") -> tuple[int, str]:
    """One request over the host's loopback: (status, body)."""
    out = in_netns(
        host,
        [
            "curl",
            "-s",
            "-m",
            "10",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            f"http://127.0.0.1:{port}{path}",
        ],
        check=False,
    ).stdout
    body, _, status = out.rpartition("\n")
    return int(status or 0), body


def count_of(body: str) -> int:
    found = re.search(r"visited (\d+) times", body)
    if not found:
        raise RuntimeError(f"not the counter's answer: {body!r}")
    return int(found.group(1))


def wait_until(
    predicate, *, timeout: float, interval: float = 0.05, what: str = "condition"
) -> float:
    """Poll until predicate() is true; seconds waited."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(interval)


def unit_memory_mib(host: str, unit: str) -> float | None:
    out = sh(host, f"systemctl show -p MemoryCurrent --value {unit}").strip()
    return round(int(out) / 2**20, 1) if out.isdigit() else None


def host_program(*functions, call: str) -> str:
    """Python source for a lab host (or a program run with in_netns): the
    given functions, self-contained (they import what they use), then `call`.
    s3_request brings the signer it calls."""
    import inspect

    if s3_request in functions:
        functions = (signed, *functions)
    return "\n\n".join([*(inspect.getsource(f) for f in functions), call]) + "\n"


def litestream_config(host: str, settings: Settings) -> dict:
    """The host's litestream.yml, as deployed."""
    import yaml

    return yaml.safe_load(sh(host, f"cat {settings.raw['litestream_config_path']}"))


def replica_config(host: str, settings: Settings) -> dict:
    """The `replica:` mapping of the host's one database, as deployed."""
    return litestream_config(host, settings)["dbs"][0]["replica"]


def s3_request(
    env_file: str, endpoint: str, method: str, path: str, params: dict, dest: str | None = None
) -> bytes:
    """One SigV4-signed S3 request (empty body) with the keys in a host's
    Litestream environment file; the answer's body (streamed into the file
    `dest` instead, if given: b"" is returned). Runs on a lab host, shipped
    with host_program together with `signed` (the guard's signer,
    litestream_guard.sigv4): standard library only, TLS checked against the
    host's trust store."""
    import re
    import urllib.request

    with open(env_file) as f:
        env = {k: v.strip("'\"") for k, v in re.findall(r"^(\w+)=(.*)$", f.read(), re.M)}
    key, secret = env["LITESTREAM_ACCESS_KEY_ID"], env["LITESTREAM_SECRET_ACCESS_KEY"]
    url, headers = signed(method, endpoint, path, params, key, secret)
    request = urllib.request.Request(url, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=60) as response:
        if dest is None:
            return response.read()
        with open(dest, "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        return b""
