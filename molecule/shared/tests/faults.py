"""Faults and load the drills put on the lab: a real partition of the store
(docker pause), a steady load of visits, and the time a host is without an
answer after an action."""

from __future__ import annotations

import json
import subprocess
import time

import programs
from deployment import PORT
from hosts import app_name, get, wait_until


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


class Load:
    """~rate requests/s from `threads` workers (programs/load.py), bounded in
    time: from the app host itself to its loopback, or from another lab host
    (``source``) to the app host. stop() returns what it saw: requests
    answered and failed, the highest count acknowledged."""

    def __init__(
        self, host, rate: int = 100, threads: int = 4, seconds: int = 900, source=None
    ) -> None:
        self.host = source or host
        self.out = f"/var/tmp/load-{time.monotonic_ns()}.json"  # noqa: S108 - on a test host
        url = f"http://{app_name(host) if source else '127.0.0.1'}:{PORT}/"
        self.args = (str(rate), str(threads), str(seconds), self.out, url)

    def __enter__(self) -> Load:
        self.host.check_output(
            "nohup setsid python3 -c %s %s %s %s %s %s >/dev/null 2>&1 &",
            programs.text("load.py"),
            *self.args,
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
