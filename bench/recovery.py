"""How fast a killed unit is back: Litestream killed (SIGKILL) until a visit
made after the kill is confirmed in the replica (Litestream's control socket:
the replica's TXID reaches the local one, no forced upload), and the app
killed (SIGKILL) until it answers GET / again. Measured on the app host
itself, three times each; the unit restarts on its own (Restart=always).
Each Litestream kill comes at least 30 s after the unit's last start: starts
closer together are a crash loop, which litestream-guard slows down on
purpose (0.2 s, 0.4 s, ... up to litestream_restart_max_sec)."""

from __future__ import annotations

import json
import statistics
import sys

import lab

# litestream-guard's QUICK_RESTART: starts closer together than this are a loop.
QUICK_RESTART_S = 30

# Run on the app host as root with the app's Python (its control-socket
# client, litestream_control, reads the socket).
_LITESTREAM_KILLED = r"""
import json, os, signal, subprocess, sys, time, urllib.request
from litestream_control import Control
unit, sock, db, port, quiet = sys.argv[1:6]
control = Control(sock, db)
def since_start():  # systemd's and Python's monotonic clocks are the same
    started = int(subprocess.check_output(
        ["systemctl", "show", "-p", "ExecMainStartTimestampMonotonic", "--value", unit]))
    return time.monotonic() - started / 1e6
while since_start() < float(quiet):  # an isolated failure, not a crash loop
    time.sleep(0.2)
def main_pid():
    return int(subprocess.check_output(["systemctl", "show", "-p", "MainPID", "--value", unit]))
def position():
    try:
        return control.sync_position(timeout=1)
    except control.ERRORS:
        return None
deadline = time.monotonic() + 60
while (p := position()) is None or p[1] < p[0]:  # caught up before the kill
    assert time.monotonic() < deadline, "replica not caught up before the kill"
    time.sleep(0.05)
start = time.monotonic()
os.kill(main_pid(), signal.SIGKILL)
urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read()
written = None
while True:
    p = position()
    if p is not None:
        if written is None:
            written = p[0]  # the first position Litestream reports holds the visit
        if p[1] >= written:
            break
    assert time.monotonic() - start < 120, "not replicating again within 120 s"
    time.sleep(0.02)
print(json.dumps({"seconds": time.monotonic() - start}))
"""

_APP_KILLED = r"""
import json, subprocess, sys, time, urllib.request
unit, port = sys.argv[1:3]
start = time.monotonic()
subprocess.run(["systemctl", "kill", "-s", "KILL", unit], check=True)
time.sleep(0.05)
while True:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
            if r.status == 200:
                break
    except OSError:
        pass
    assert time.monotonic() - start < 60, "not serving again within 60 s"
    time.sleep(0.02)
print(json.dumps({"seconds": time.monotonic() - start}))
"""


def _healthy(host: str, settings: lab.Settings) -> bool:
    return lab.visit(host, settings.port, "/healthz")[0] == 200


def measure(settings: lab.Settings, host: str = lab.APP_HOSTS[1], times: int = 3) -> dict:
    result = {}
    cases = {
        "litestream_killed_to_replicating_s": (
            _LITESTREAM_KILLED,
            [
                settings.litestream_unit,
                settings.litestream_socket,
                settings.db,
                str(settings.port),
                str(QUICK_RESTART_S + 1),
            ],
        ),
        "app_killed_to_serving_s": (_APP_KILLED, [settings.app_unit, str(settings.port)]),
    }
    for name, (code, args) in cases.items():
        runs = []
        for _ in range(times):
            lab.wait_until(lambda: _healthy(host, settings), timeout=120, what=f"{host} healthy")
            out = lab.py(host, code, *args, python=settings.venv_python, timeout=180)
            runs.append(round(json.loads(out)["seconds"], 2))
        result[name] = {"runs": runs, "median": statistics.median(runs), "max": max(runs)}
    lab.wait_until(lambda: _healthy(host, settings), timeout=120, what=f"{host} healthy")
    result["method"] = " ".join(__doc__.split())
    return result


def memory(settings: lab.Settings) -> dict:
    """Resident memory (the unit's cgroup, MiB) of each unit on each host."""
    units = {host: [settings.app_unit, settings.litestream_unit] for host in lab.APP_HOSTS}
    units[lab.STORAGE_HOST] = ["ssh.service", "seaweedfs.service"]
    return {
        f"{host} {unit}": mib
        for host, names in units.items()
        for unit in names
        if (mib := lab.unit_memory_mib(host, unit)) is not None
    }


if __name__ == "__main__":
    settings = lab.read_settings()
    times = 1 if "--quick" in sys.argv else 3
    print(
        json.dumps(
            {"recovery": measure(settings, times=times), "memory_mib": memory(settings)}, indent=2
        )
    )
