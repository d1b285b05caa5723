"""Deploy times on the lab: `ansible-playbook -i inventory/lab site.yml` with
nothing to change (must report changed=0 on every host), an app-only change
rolled out (a copy of app/ with one comment added, given as
counter_app_source; then the unchanged app again), and a cold lab:
`make down` + `make demo` (hosts re-created, the database restored from the
replica that `make down` keeps)."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import lab


def _recap(out: str) -> dict[str, dict[str, int]]:
    recap = {}
    for host, fields in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", out, re.MULTILINE):
        recap[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", fields)}
    return recap


def site(replica: str, extra: dict | None = None) -> dict:
    args = [
        str(lab.BIN / "ansible-playbook"),
        "-i",
        str(lab.INVENTORY),
        str(lab.ROOT / "site.yml"),
        "-e",
        json.dumps({"lab_replica": replica, **(extra or {})}),
    ]
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(lab.ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",  # `make` exports 1
    )
    start = time.monotonic()
    out = re.sub(r"\x1b\[[0-9;]*m", "", lab.run(args, env=env, cwd=lab.ROOT, timeout=1800).stdout)
    seconds = round(time.monotonic() - start, 1)
    recap = _recap(out)
    if not recap:
        raise RuntimeError(f"no PLAY RECAP in the output of site.yml: {out[-1000:]}")
    return {
        "seconds": seconds,
        "changed": sum(r.get("changed", 0) for r in recap.values()),
        "failed": sum(r.get("failed", 0) + r.get("unreachable", 0) for r in recap.values()),
        "tasks": sum(r.get("ok", 0) + r.get("skipped", 0) for r in recap.values()),
    }


def _app_copy(scratch: Path) -> Path:
    copy = scratch / "app"
    shutil.copytree(
        lab.ROOT / "app",
        copy,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"),
    )
    init = copy / "src" / "counter_app" / "__init__.py"
    init.write_text(init.read_text() + f"# bench rollout {time.time()}\n")
    return copy


def measure(settings: lab.Settings) -> dict:
    replica = settings.replica_type
    noop = [site(replica) for _ in range(2)]
    with tempfile.TemporaryDirectory(prefix="bench-app-") as scratch:
        changed_app = site(replica, {"counter_app_source": str(_app_copy(Path(scratch)))})
    back = site(replica)
    return {
        "noop": noop,
        "app_only": [changed_app, back],
        "method": " ".join(__doc__.split()),
    }


def cold(settings: lab.Settings) -> dict:
    def make(*target: str) -> float:
        start = time.monotonic()
        lab.run(["make", "-C", str(lab.ROOT), *target], timeout=1800)
        return round(time.monotonic() - start, 1)

    down = make("down")
    demo = make("demo", f"REPLICA={settings.replica_type}")
    lab.host_pid.cache_clear()  # the hosts were made anew: sections after this one
    return {"down_s": down, "demo_s": demo, "total_s": round(down + demo, 1)}


if __name__ == "__main__":
    print(json.dumps(measure(lab.read_settings()), indent=2))
