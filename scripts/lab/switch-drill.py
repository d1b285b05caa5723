#!/usr/bin/env python3
"""Drill on the running lab (`make demo`, SFTP): lab-app1 switches stores
SFTP -> S3 -> SFTP under ~100 visits/s, each switch a deploy of the changed
variable (`site.yml -e lab_replica=...`, as `make demo REPLICA=...` does)
after more than Litestream's l0-retention (5 min) of writes. After each
switch: no failed visit, readiness green again within 60 s of the deploy,
then a power cut of lab-app1 (its disk lost) and a re-deploy restore at
least every visit acknowledged before the last green readiness. The second
switch returns to this host's own older history on SFTP. The switch to S3
takes the path over (litestream_replica_takeover): `make down` keeps the
lab's stores, so the path may hold the history of a lab host made before
this one, which the deploy would otherwise refuse (moved aside, not lost).

    scripts/lab/switch-drill.py [--wait SECONDS]   (run by `make drills`)

Prints one line per switch with its figures; exits 1 when a bound is missed.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

from lab_host import HOST, count_of, deploy, get, healthy, on_app, power_cut, wait


class Load:
    """~rate visits/s to lab-app1 from this machine, every answer counted."""

    def __init__(self, rate: int = 100, threads: int = 4) -> None:
        self.gap = threads / rate
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.ok = self.failed = self.max_ack = 0
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._work) for _ in range(threads)]

    def _work(self) -> None:
        while not self.stop_event.is_set():
            started = time.monotonic()
            status, body = get("/")
            with self.lock:
                if status == 200 and (number := count_of(body)) is not None:
                    self.ok += 1
                    self.max_ack = max(self.max_ack, number)
                else:
                    self.failed += 1
                    if len(self.errors) < 5:
                        self.errors.append(f"{status} {body[:100]}")
            time.sleep(max(0.0, self.gap - (time.monotonic() - started)))

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join()


def history() -> dict:
    """The guard's record of replica histories begun on lab-app1:
    {"restarts": N, "last": {...}}."""
    found = json.loads(on_app("litestream-guard status")).get("history") or {}
    return {"restarts": int(found.get("restarts", 0)), "last": found.get("last") or {}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wait", type=float, default=330, help="seconds of writes before a switch")
    args = parser.parse_args()
    if not healthy():
        raise SystemExit(f"{HOST} is not ready: run `make demo` first")
    failures = 0
    for replica in ("s3", "sftp"):
        with Load() as load:
            time.sleep(args.wait)
            restarts = history()["restarts"]
            deploy({"lab_replica": replica, "litestream_replica_takeover": replica == "s3"})
            green = wait(healthy, 60, f"readiness green after the switch to {replica}")
            # Every visit acknowledged before readiness turned green; the
            # load goes on a little longer, so that the power cut does not
            # fall within Litestream's sync interval of them (a power cut
            # loses at most that much of the newest writes: docs/drills.md).
            with load.lock:
                acked = load.max_ack
            time.sleep(5)
        power_cut({"lab_replica": replica})
        status, body = get("/")  # the load has stopped: the first visit after the restore
        number = count_of(body) if status == 200 else None
        restored = number - 1 if number is not None else -1
        begun = history()
        # Whether this switch (or the power cut after it) began a new history.
        said = begun["last"].get("why", "?") if begun["restarts"] > restarts else "none"
        ok = load.failed == 0 and restored >= acked
        failures += not ok
        print(
            f"switch to {replica}: {load.ok} visits, {load.failed} failed {load.errors}; green "
            f"{green:.1f} s after the deploy; power cut + re-deploy restored {restored} "
            f"(acknowledged before green: {acked}; last acknowledged: {load.max_ack}); "
            f"new history begun at this switch: {said}"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
