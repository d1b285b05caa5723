"""The lab's app host as the lab scripts (soak.py, switch-drill.py) drive
it: commands on the machine and in lab-app1, HTTP to its published port, a
deploy of site.yml, and a power cut with the disk lost and a re-deploy."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / ".venv" / "bin" / "ansible-playbook"
HOST, STORE, URL = "lab-app1", "lab-storage", "http://127.0.0.1:8080"


def sh(*argv: str, timeout: float = 900, check: bool = True) -> str:
    """The command's output; with check=False, "" rather than an error (a
    failure or a timeout)."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        if check:
            raise RuntimeError(f"{' '.join(argv[:5])}: no answer within {timeout} s") from None
        return ""
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:5])}: exit {out.returncode}: {out.stderr[-1500:]}")
    return out.stdout


def on_app(script: str, timeout: float = 900, check: bool = True) -> str:
    return sh("docker", "exec", HOST, "sh", "-c", script, timeout=timeout, check=check)


def get(path: str, timeout: float = 10) -> tuple[int, str]:
    """(status, body) of a GET; (0, "") when nothing answered."""
    try:
        with urllib.request.urlopen(URL + path, timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except OSError:
        return 0, ""


def count_of(body: str) -> int | None:
    """The number in the counter's answer ("This server has been visited N
    times."); None for any other body."""
    found = re.search(r"visited (\d+) times", body)
    return int(found.group(1)) if found else None


def healthy() -> bool:
    return get("/healthz", timeout=5)[0] == 200


def wait(check: Callable[[], object], timeout: float, what: str) -> float:
    """Seconds until check() is true; RuntimeError after timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.5)
    raise RuntimeError(f"{what}: not within {timeout:.0f} s")


def deploy(extra: dict) -> float:
    """site.yml on the lab with these extra variables; its seconds."""
    started = time.monotonic()
    out = subprocess.run(
        [str(PLAYBOOK), "-i", "inventory/lab", "site.yml", "-e", json.dumps(extra)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the deploy failed:\n{out.stdout[-3000:]}{out.stderr[-2000:]}")
    return time.monotonic() - started


def power_cut(extra: dict) -> float:
    """lab-app1 cut off (docker kill, its units disabled so that it boots
    without them); it comes back with its database lost and is deployed
    again (with these extra variables); returns once it is ready. Returns
    the time of the cut, taken once the host is dead: every answer of the
    old host is done by then. It makes no visit of its own: a caller whose
    load runs on reads what was restored from its own answers."""
    on_app("systemctl disable counter.service litestream.service")
    sh("docker", "kill", HOST)
    cut = time.time()
    sh("docker", "start", HOST)
    wait(
        lambda: (
            on_app("systemctl is-system-running --wait || true", check=False).strip()
            in ("running", "degraded")
        ),
        120,
        f"{HOST} boots",
    )
    on_app("rm -rf /var/lib/counter/counter.db* /var/lib/counter/.counter.db-litestream")
    deploy(extra)
    wait(healthy, 120, f"{HOST} restored and ready")
    return cut
