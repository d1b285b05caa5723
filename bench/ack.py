"""Acknowledge after replication: what it costs against the default mode, in
one run. The counter as deployed (default mode: a visit is answered once it
is on the host's disk) and the same app in the acknowledge-after-replication
mode (counter_ack_after_replication), run beside it by the app's Python as
the app's account on a port of the bench's own, with the deployed settings
plus COUNTER_ACK_AFTER_REPLICATION=1: the same database, the same
Litestream. They take turns under wrk over the app host's loopback (1 and 32
connections; ROUNDS rounds, the one that goes first alternating). Store
requests: Litestream's own litestream_replica_operation_total over each run,
scaled to an hour as in the replication section (2 x PUT + GET: every file
put is deleted once)."""

from __future__ import annotations

import time

import lab
import replication
from throughput import PROBE_PREAMBLE, Probe, wrk

ACK_PORT = 18081
MARK = "bench-ack"
CONNECTIONS = (1, 32)
ROUNDS = 2
METRICS_ADDR = "127.0.0.1:9390"  # the deployed Litestream's (the lab's litestream_metrics_addr)

# The app itself (counter_app's main), in the other mode, on argv[3].
ACK = (
    PROBE_PREAMBLE
    + r"""
import os
os.environ.update(env)
os.environ.update(COUNTER_ACK_AFTER_REPLICATION="1", COUNTER_METRICS_PORT="0")
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
    lab.wait_until(
        lambda: lab.visit(host, settings.port, "/healthz")[0] == 200,
        timeout=120,
        interval=1,
        what=f"{host} /healthz 200 before the run",
    )
    points = []
    with Probe(host, settings, ACK, ACK_PORT, MARK):
        healthz = lab.visit(host, ACK_PORT, "/healthz")[1]
        if "acknowledged once the replica holds them" not in healthz:
            raise RuntimeError(f"the probe is not in the mode: /healthz said {healthz!r}")
        for connections in CONNECTIONS:
            for round_ in range(ROUNDS):
                order = [("default", settings.port), ("ack", ACK_PORT)]
                if round_ % 2:
                    order.reverse()
                point: dict = {"connections": connections, "round": round_ + 1}
                for name, port in order:
                    point[name] = _run(host, port, connections, seconds, warmup)
                d, a = point["default"], point["ack"]
                point["rps_ratio"] = round(a["rps"] / d["rps"], 3) if d["rps"] else None
                points.append(point)
    return {"points": points, "method": __doc__.split("\n\n")[0].replace("\n", " ")}


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
