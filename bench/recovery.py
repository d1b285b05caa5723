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
import re
import shlex
import statistics
import sys
import time

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


# A lost host: its database grown to MIB MiB of random blobs (a table of its
# own, written as the app's user), replicated, then the host's data
# directory wiped and the host rebooted (docker restart): how long until it
# serves the restored count.
_PAD = r"""
import os, sys, apsw
db, mib = sys.argv[1], int(sys.argv[2])
conn = apsw.Connection(db)
conn.set_busy_timeout(10000)
conn.execute("CREATE TABLE IF NOT EXISTS bench_padding (id INTEGER PRIMARY KEY, data BLOB)")
for _ in range(mib):  # 1 MiB a transaction: 16 pages of 4 KiB a row
    with conn:
        for _ in range(16):
            conn.execute("INSERT INTO bench_padding (data) VALUES (?)", (os.urandom(16 * 4084),))
# The database's size as SQLite sees it (most of it is still in the WAL).
pragma = lambda name: conn.execute(f"PRAGMA {name}").fetchall()[0][0]
print(pragma("page_count") * pragma("page_size"))
"""

_UNPAD = r"""
import sys, apsw
conn = apsw.Connection(sys.argv[1])
conn.set_busy_timeout(30000)
conn.execute("DROP TABLE IF EXISTS bench_padding")
conn.execute("VACUUM")
"""

# Seconds until the replica holds every local write (Litestream's control socket).
_REPLICATED = r"""
import json, sys, time
from litestream_control import Control
control = Control(sys.argv[1], sys.argv[2])
start = time.monotonic()
while True:
    try:
        local, replicated = control.sync_position(wait=30, timeout=40)
        if replicated >= local:
            break
    except control.ERRORS:
        time.sleep(0.5)
    assert time.monotonic() - start < 900, "not replicated within 900 s"
print(json.dumps({"seconds": time.monotonic() - start}))
"""


def lost_host(settings: lab.Settings, host: str = lab.APP_HOSTS[1], mib: int = 1024) -> dict:
    """The recovery time of a lost host with a MIB MiB database: data
    directory wiped, host stopped, then timed from its start (docker start:
    a boot) until /healthz is green and the count is the one before (the
    restore's progress lines taken from the journal)."""
    user = settings.raw["counter_user"]
    data = settings.db.rsplit("/", 1)[0]

    def as_app(code: str, *args: str, timeout: float = 900) -> str:
        quoted = " ".join(shlex.quote(a) for a in args)
        return lab.sh(
            host,
            f"runuser -u {user} -- {settings.venv_python} -c {shlex.quote(code)} {quoted}",
            timeout=timeout,
        )

    def replicated() -> float:
        out = lab.py(
            host,
            _REPLICATED,
            settings.litestream_socket,
            settings.db,
            python=settings.venv_python,
            timeout=960,
        )
        return json.loads(out)["seconds"]

    lab.wait_until(lambda: _healthy(host, settings), timeout=120, what=f"{host} healthy")
    try:
        db_bytes = int(as_app(_PAD, settings.db, str(mib)))
        upload_s = replicated()
        count = lab.count_of(lab.visit(host, settings.port, "/")[1])
        replicated()
        lab.sh(host, f"systemctl stop {settings.app_unit} {settings.litestream_unit}")
        lab.sh(host, f"find {data} -mindepth 1 -delete")
        since = lab.sh(host, "date '+%Y-%m-%d %H:%M:%S'").strip()
        show_status = f"systemctl show -p StatusText --value {settings.litestream_unit}"
        lab.run(["docker", "stop", host])  # the old host's shutdown is not timed
        start = time.monotonic()
        lab.run(["docker", "start", host])
        lab.host_pid.cache_clear()
        answers: dict[str, float] = {}  # what /healthz said, first seen when
        unit_said: dict[str, float] = {}  # Litestream's unit status line (systemctl status)
        asked = 0.0

        def ready() -> bool:
            nonlocal asked
            if time.monotonic() - asked >= 1:  # once a second: a docker exec each
                asked = time.monotonic()
                line = lab.sh(host, show_status, check=False).strip()
                if line:
                    unit_said.setdefault(line, time.monotonic() - start)
            status, body = lab.visit(host, settings.port, "/healthz")
            if status:
                answers.setdefault(f"{status} {body.strip()[:120]}", time.monotonic() - start)
            return status == 200

        lab.wait_until(ready, timeout=900, interval=0.1, what=f"{host} serving")
        rto_s = time.monotonic() - start
        restored = lab.count_of(lab.visit(host, settings.port, "/")[1]) - 1
        journal = lab.sh(host, f"journalctl -u {settings.litestream_unit} --since '{since}' -o cat")
        fetched = [line for line in journal.splitlines() if "restoring:" in line]
        # The guard's own figure for its restore (replica read, fetch, apply, check).
        took = re.findall(r"Restored .* from the replica \(.*\) in ([0-9.]+) s", journal)
    finally:
        lab.wait_until(lambda: _healthy(host, settings), timeout=900, what=f"{host} healthy")
        as_app(_UNPAD, settings.db)
    return {
        "size_mib": mib,
        "db_bytes": db_bytes,
        "upload_s": round(upload_s, 1),
        "reboot_to_serving_s": round(rto_s, 1),
        "restore_s": float(took[-1]) if took else None,
        # Each answer /healthz gave, and when it first gave it (s after boot).
        "healthz_said": {text: round(t, 1) for text, t in answers.items()},
        # What `systemctl status` showed as the unit's status meanwhile.
        "unit_status_said": {text: round(t, 1) for text, t in unit_said.items()},
        "count_before": count,
        "count_restored": restored,
        "restore_said": fetched[-3:],
        "method": " ".join((lost_host.__doc__ or "").split()),
    }


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
