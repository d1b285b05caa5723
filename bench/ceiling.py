"""What the stack allows: at 32 connections, in one run, the bare hello, the
counter, and two probes that each leave one part of the counter out, all
served by the same Python with the same waitress settings on the same host:

- "Bottle, count in memory": the app's own routes and request metrics
  (create_app, RequestMetrics) with a count kept in memory and answered at
  once: no database, no wait. The most a Bottle counter can reach here.
- "no Bottle, durable count": the app's own VisitStore (group commit, the
  answer after its fdatasync) on a scratch database beside the real one,
  behind a plain WSGI function with the same metrics: what the durable
  answer costs without Bottle.

The counter is measured in its unit, with Litestream replicating; the probes
run outside it (the scratch database is not replicated). Each point: a
warm-up, then the measured run, the order turning each round; medians of
the rounds."""

from __future__ import annotations

import contextlib
import posixpath
import statistics

import lab
import throughput

CONNECTIONS = 32
MEMORY_PORT, DURABLE_PORT = 18081, 18082

_BOTTLE_MEMORY = (
    throughput.PROBE_PREAMBLE
    + r"""
import itertools
from prometheus_client import CollectorRegistry
from counter_app.metrics import RequestMetrics
from counter_app.web import create_app
class MemoryCount:
    def __init__(self):
        self.numbers = itertools.count(1)
    def record_visit(self):
        return next(self.numbers)
    def count(self):
        return 0
app = RequestMetrics(CollectorRegistry()).wrap(create_app(MemoryCount()))
configure_logging()
waitress.serve(app, **config.waitress_settings())
"""
)

_WSGI_DURABLE = (
    throughput.PROBE_PREAMBLE
    + r"""
from prometheus_client import CollectorRegistry
from counter_app.metrics import RequestMetrics
from counter_app.store import VisitStore
store = VisitStore(sys.argv[4])
def count(environ, start_response):
    body = b"This server has been visited %d times.\n" % store.record_visit()
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                              ("Cache-Control", "no-store"),
                              ("Content-Length", str(len(body)))])
    return [body]
app = RequestMetrics(CollectorRegistry()).wrap(count)
configure_logging()
waitress.serve(app, **config.waitress_settings())
"""
)

NAMES = {
    "hello": "bare waitress hello",
    "bottle_memory": "Bottle routes + metrics, count in memory (no database, no wait)",
    "wsgi_durable": "no Bottle: plain WSGI + metrics, the durable store",
    "counter": "the counter (its unit, Litestream replicating)",
}


def measure(
    settings: lab.Settings,
    host: str = lab.APP_HOSTS[0],
    rounds: int = 2,
    seconds: int = 10,
    warmup: int = 3,
) -> dict:
    scratch = posixpath.join(posixpath.dirname(settings.db), "bench-ceiling.db")
    remove = f"rm -f {scratch} {scratch}-wal {scratch}-shm"
    probes = {
        "hello": throughput.Probe(
            host, settings, throughput.HELLO, throughput.HELLO_PORT, throughput.MARK
        ),
        "bottle_memory": throughput.Probe(
            host, settings, _BOTTLE_MEMORY, MEMORY_PORT, "bench-bottle-memory"
        ),
        "wsgi_durable": throughput.Probe(
            host, settings, _WSGI_DURABLE, DURABLE_PORT, "bench-wsgi-durable", (scratch,)
        ),
    }
    ports = {name: probe.port for name, probe in probes.items()} | {"counter": settings.port}
    runs: dict[str, list[dict]] = {name: [] for name in ports}
    lab.sh(host, remove)
    try:
        with contextlib.ExitStack() as running:
            for probe in probes.values():
                running.enter_context(probe)
            names = list(ports)
            for r in range(rounds):
                order = names[r % len(names) :] + names[: r % len(names)]
                for name in order:
                    throughput.wrk(host, ports[name], CONNECTIONS, warmup)
                    runs[name].append(throughput.wrk(host, ports[name], CONNECTIONS, seconds))
    finally:
        lab.sh(host, remove)
    hello = runs["hello"]

    def to_hello(got: list[dict], key: str) -> float:
        """The median over the rounds of each round's figure / the hello's."""
        return round(statistics.median(g[key] / h[key] for g, h in zip(got, hello, strict=True)), 3)

    servers = {
        name: {
            "what": NAMES[name],
            "rps": round(statistics.median(g["rps"] for g in got)),
            "p99_ms": round(statistics.median(g["p99_ms"] for g in got), 2),
            "errors": sum(g["errors"] for g in got),
            "rps_ratio": to_hello(got, "rps"),
            "p99_ratio": to_hello(got, "p99_ms"),
            "rounds": got,
        }
        for name, got in runs.items()
    }
    return {
        "connections": CONNECTIONS,
        "rounds": rounds,
        "servers": servers,
        "method": __doc__.split("\n\n")[0].replace("\n", " "),
    }


if __name__ == "__main__":
    import json
    import sys

    quick = "--quick" in sys.argv
    result = measure(
        lab.read_settings(),
        rounds=1 if quick else 2,
        seconds=3 if quick else 10,
        warmup=1 if quick else 3,
    )
    print(json.dumps(result, indent=2))
