"""Acknowledge after replication: what it costs against the default mode, in
one run. The lab is deployed in the acknowledge-after-replication mode
(site.yml with counter_ack_after_replication: true, so Litestream runs with
the settings the role gives an app that waits for its sync: level 0 kept
short) and the same app in the default mode (a visit is answered once it is
on the host's disk) runs beside it, by the app's Python as the app's
account on a port of the bench's own, with the deployed settings but
COUNTER_ACK_AFTER_REPLICATION=0: the same database, the same Litestream.
They take turns under wrk over the app host's loopback (1 and 32
connections; ROUNDS rounds, the one that goes first alternating); then the
lab is deployed back in the default mode. Store requests: Litestream's own
litestream_replica_operation_total over each run, scaled to an hour as in
the replication section (2 x PUT + GET: every file put is deleted once)."""

from __future__ import annotations

import sys
import time

import deploy
import lab
import replication
from throughput import PROBE_PREAMBLE, Probe, wrk

DEFAULT_PORT = 18081
MARK = "bench-default"
CONNECTIONS = (1, 32)
ROUNDS = 2
METRICS_ADDR = "127.0.0.1:9390"  # the deployed Litestream's (the lab's litestream_metrics_addr)
ACK_READY = "acknowledged once the replica holds them"
# The deployed Litestream's settings the mode changes, for the report.
LITESTREAM_KEYS = ("l0-retention", "l0-retention-check-interval", "levels")

# The app itself (counter_app's main), in the default mode, on argv[3].
DEFAULT = (
    PROBE_PREAMBLE
    + r"""
import os
os.environ.update(env)
os.environ.update(COUNTER_ACK_AFTER_REPLICATION="0", COUNTER_METRICS_PORT="0")
from counter_app.__main__ import main
sys.argv[1:] = []
raise SystemExit(main())
"""
)


def _store_requests(host: str) -> dict[str, int]:
    out = lab.in_netns(host, ["curl", "-sf", "-m", "5", f"http://{METRICS_ADDR}/metrics"]).stdout
    return replication.operations(out)


def _run(host: str, port: int, connections: int, seconds: int, warmup: int) -> dict:
    wrk(host, port, connections, warmup)
    before, started = _store_requests(host), time.monotonic()
    result = wrk(host, port, connections, seconds)
    after, elapsed = _store_requests(host), time.monotonic() - started
    requests = {op: n - before.get(op, 0) for op, n in after.items() if n - before.get(op, 0)}
    result["store_requests_per_hour"] = replication.per_hour(requests, elapsed)
    result["store_requests"] = requests
    return result


def measure(
    settings: lab.Settings, host: str = lab.APP_HOSTS[0], seconds: int = 10, warmup: int = 3
) -> dict:
    replica = settings.replica_type
    deployed = deploy.site(replica, {"counter_ack_after_replication": True})
    try:
        if deployed["failed"]:
            raise RuntimeError(f"site.yml in the ack mode failed: {deployed}")
        return _measure(lab.read_settings(), host, seconds, warmup)
    finally:
        back = deploy.site(replica)
        if back["failed"]:  # said, not raised: an error already on its way stays the one shown
            print(f"bench: site.yml back to the default mode failed: {back}", file=sys.stderr)


def _measure(settings: lab.Settings, host: str, seconds: int, warmup: int) -> dict:
    lab.wait_until(
        lambda: lab.visit(host, settings.port, "/healthz")[0] == 200,
        timeout=120,
        interval=1,
        what=f"{host} /healthz 200 before the run",
    )
    healthz = lab.visit(host, settings.port, "/healthz")[1]
    if ACK_READY not in healthz:
        raise RuntimeError(f"the deployed app is not in the mode: /healthz said {healthz!r}")
    config = lab.litestream_config(host, settings)
    points = []
    with Probe(host, settings, DEFAULT, DEFAULT_PORT, MARK):
        healthz = lab.visit(host, DEFAULT_PORT, "/healthz")[1]
        if ACK_READY in healthz:
            raise RuntimeError(f"the probe is not in the default mode: /healthz said {healthz!r}")
        for connections in CONNECTIONS:
            for round_ in range(ROUNDS):
                order = [("default", DEFAULT_PORT), ("ack", settings.port)]
                if round_ % 2:
                    order.reverse()
                point: dict = {"connections": connections, "round": round_ + 1}
                for name, port in order:
                    point[name] = _run(host, port, connections, seconds, warmup)
                d, a = point["default"], point["ack"]
                point["rps_ratio"] = round(a["rps"] / d["rps"], 3) if d["rps"] else None
                points.append(point)
    return {
        "points": points,
        "litestream": {k: config[k] for k in LITESTREAM_KEYS},
        "method": " ".join(__doc__.split("\n\n")[0].split()),
    }


def summary(result: dict, connections: int = 32) -> dict:
    """The worst round at `connections`: the lowest ratio, the highest p99."""
    rows = [p for p in result["points"] if p["connections"] == connections]
    return {
        "rps_ratio": min(p["rps_ratio"] for p in rows),
        "ack_p99_ms": max(p["ack"]["p99_ms"] for p in rows),
        "ack_rps": min(p["ack"]["rps"] for p in rows),
        "default_rps": min(p["default"]["rps"] for p in rows),
        "ack_store_requests_per_hour": max(p["ack"]["store_requests_per_hour"] for p in rows),
        "default_store_requests_per_hour": max(
            p["default"]["store_requests_per_hour"] for p in rows
        ),
        "ack_errors": sum(p["ack"]["errors"] for p in rows),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(measure(lab.read_settings()), indent=2))
