#!/usr/bin/env python3
"""What `restore -integrity-check` costs: restore one database with none,
quick and full, in one run, and print the times side by side.

    bench/measure-restore-integrity.py LITESTREAM_BINARY [SIZE_MIB] [WORKDIR]

Builds a SQLite database of about SIZE_MIB (default 1024) of 1 KB random rows,
replicates it with `litestream replicate` to a file replica in WORKDIR, then
restores it three times. Local disk only: the figures are the check's own cost,
not a store's.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(binary: str, size_mib: int = 1024, workdir: str | None = None) -> int:
    work = Path(workdir or tempfile.mkdtemp(prefix="restore-integrity."))
    work.mkdir(parents=True, exist_ok=True)
    db, replica = work / "db.sqlite", work / "replica"
    config = work / "litestream.yml"
    config.write_text(
        f"dbs:\n  - path: {db}\n    replica:\n      type: file\n      path: {replica}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)")
    for _ in range(size_mib):
        rows = [(os.urandom(1000),) for _ in range(1000)]
        conn.executemany("INSERT INTO t (b) VALUES (?)", rows)
        conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    size = db.stat().st_size
    log = (work / "replicate.log").open("w")
    daemon = subprocess.Popen(
        [binary, "replicate", "-config", str(config)], stdout=log, stderr=log, env=env
    )
    try:
        while "snapshot complete" not in (work / "replicate.log").read_text():
            time.sleep(1)
        time.sleep(2)
    finally:
        daemon.terminate()
        daemon.wait()
    print(f"database {size / 2**20:.0f} MiB, replica {_du(replica) / 2**20:.0f} MiB")
    # Interleaved, three rounds, the best of each: the page cache and the
    # machine's noise treat every mode alike.
    times: dict[str, float] = {}
    for _ in range(3):
        for mode in ("none", "quick", "full"):
            out = work / f"restored-{mode}.db"
            started = time.monotonic()
            command = [binary, "restore", "-config", str(config), "-integrity-check", mode]
            subprocess.run(
                [*command, "-o", str(out), str(db)], check=True, env=env, capture_output=True
            )
            elapsed = time.monotonic() - started
            times[mode] = min(times.get(mode, elapsed), elapsed)
            out.unlink()
    base = times["none"]
    print("| -integrity-check | restore time | vs none |\n|---|---|---|")
    for mode, seconds in times.items():
        print(f"| {mode} | {seconds:.1f} s | {seconds / base:.2f}x |")
    shutil.rmtree(work)
    return 0


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(args[0], *(int(a) for a in args[1:2]), *args[2:3]))
