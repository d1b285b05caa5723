"""make bench: the counter's figures on the lab, in one run.

    .venv/bin/python bench [--quick] [--only SECTION,...] [--skip SECTION,...]

Sections: memory, http, ceiling, recovery, replication, ack, restore, deploy, cold (`make down` +
`make demo`), lost (a lost host with a 1 GiB database: reboot to serving; last). Prints a
table, writes docs/bench.json, .md and .png (an S3 lab: docs/bench-s3.*; --quick:
docs/bench-quick.*, never over the figures of record). Needs the lab up (`make demo`)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
from pathlib import Path

import ack
import ceiling
import deploy
import lab
import recovery
import replication
import report
import restore
import throughput

SECTIONS = (
    "memory",
    "http",
    "ceiling",
    "recovery",
    "replication",
    "ack",
    "restore",
    "deploy",
    "cold",
    # Last: it grows a database to 1 GiB and drops it, and the replica keeps
    # that history until its next snapshot; `cold` would restore all of it.
    "lost",
)
OUT = lab.ROOT / "docs"


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    cpu = next((x.split(":", 1)[1].strip() for x in cpuinfo if x.startswith("model name")), "?")
    mem = next(int(x.split()[1]) for x in meminfo if x.startswith("MemTotal"))
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem / 2**20, 1),
        "kernel": platform.release(),
        "docker": lab.run(["docker", "version", "-f", "{{.Server.Version}}"]).stdout.strip(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="short runs (a smoke test, not figures)"
    )
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument("--skip", default="")
    parser.add_argument(
        "--report-only", action="store_true", help="tables and plots from docs/bench*.json"
    )
    args = parser.parse_args()
    if args.report_only:
        for path in sorted(OUT.glob("bench*.json")):  # one run per store
            results = json.loads(path.read_text())
            path.with_suffix(".md").write_text(report.markdown(results))
            report.plot(results, path.with_suffix(".png"))
            print(report.markdown(results))
        return 0
    wanted = [s for s in args.only.split(",") if s and s not in args.skip.split(",")]
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")

    settings = lab.read_settings()
    results: dict = {"machine": machine(), "replica": settings.replica_type, "quick": args.quick}
    steps = {
        "memory": lambda: recovery.memory(settings),
        "http": lambda: throughput.measure(
            settings, seconds=3 if args.quick else 10, warmup=1 if args.quick else 3
        ),
        "ceiling": lambda: ceiling.measure(
            settings,
            rounds=1 if args.quick else 2,
            seconds=3 if args.quick else 10,
            warmup=1 if args.quick else 3,
        ),
        "recovery": lambda: recovery.measure(settings, times=1 if args.quick else 3),
        "replication": lambda: replication.measure(settings),
        "ack": lambda: ack.measure(settings, seconds=3 if args.quick else 10),
        "restore": lambda: restore.measure(settings),
        "lost": lambda: recovery.lost_host(settings, mib=100 if args.quick else 1024),
        "deploy": lambda: deploy.measure(settings),
        "cold": lambda: deploy.cold(settings),
    }
    # The lab's replica names the files: docs/bench.* (SFTP, the lab's
    # default), docs/bench-s3.* (`make demo REPLICA=s3`).
    stem = "bench" if settings.replica_type == "sftp" else f"bench-{settings.replica_type}"
    stem += "-quick" if args.quick else ""  # a smoke run never replaces the figures
    json_path, md_path, png_path = (OUT / f"{stem}{ext}" for ext in (".json", ".md", ".png"))
    if set(wanted) != set(SECTIONS) and json_path.exists():
        # Some sections only: the others stay as their last run measured them
        # (each section's figures and ratios come from one run of it).
        results = json.loads(json_path.read_text()) | {"machine": results["machine"]}
    when = results["machine"]["date"]
    for name in SECTIONS:
        if name not in wanted:
            continue
        print(f"bench: {name} ...", flush=True)
        start = time.monotonic()
        results[name] = steps[name]()
        results.setdefault("section_seconds", {})[name] = round(time.monotonic() - start)
        results.setdefault("section_dates", {})[name] = when
        OUT.mkdir(exist_ok=True)
        json_path.write_text(json.dumps(results, indent=2) + "\n")
    table = report.markdown(results)
    md_path.write_text(table)
    report.plot(results, png_path)
    print(table)
    print(f"bench: wrote {json_path}, {md_path}, {png_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
