"""Prometheus metrics of the app, served on a listener of their own.

Per request (a WSGI wrapper around the routes): one histogram observation of
the request's duration and one counter increment by handler and status, both
on children bound once (no label lookup per request), plus the visits
counter. Everything else is read only when Prometheus scrapes: the stored
count, the database's size and the free space of its filesystem, what the
replication monitor knows (Litestream answering, the replica's position, the
lag), and the scheduled restore drill's last result file.

The listener is separate from the app's port so the metrics never reach the
public side by default (127.0.0.1; the counter role's
``counter_metrics_listen_host`` exposes them to a scraper).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from counter_app.replicated_ack import ReplicationGate
from counter_app.replication import ReplicationMonitor
from counter_app.store import VisitStore

log = logging.getLogger("counter_app.metrics")

# The routes by name; any other path is "other" (labels stay a short list).
HANDLERS = ("/", "/healthz", "/livez")
# Request durations: the counting page answers in about a millisecond when
# idle and waits for its group's fdatasync under load.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class RequestMetrics:
    """Per-request counters and the WSGI wrapper that feeds them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        # No *_created series (a start time per series, doubling the output).
        disable_created_metrics()
        self.visits = Counter(
            "counter_visits", "Visits counted (GET / answered 200) here", registry=registry
        )
        self._latency = Histogram(
            "counter_http_request_duration_seconds",
            "Time from a request's arrival in the app to its answer",
            ["handler"],
            buckets=BUCKETS,
            registry=registry,
        )
        self._responses = Counter(
            "counter_http_responses",
            "Responses by handler and status code",
            ["handler", "code"],
            registry=registry,
        )
        self._latency_of = {h: self._latency.labels(h) for h in (*HANDLERS, "other")}
        self._responses_of: dict[tuple[str, str], Counter] = {}
        self._new_child = threading.Lock()
        for handler in HANDLERS:  # the usual answers exist from the start, at 0
            self._response(handler, "200")

    def _response(self, handler: str, code: str) -> Counter:
        child = self._responses_of.get((handler, code))
        if child is None:
            with self._new_child:
                child = self._responses_of.setdefault(
                    (handler, code), self._responses.labels(handler, code)
                )
        return child

    def observe(self, handler: str, code: str, seconds: float) -> None:
        self._latency_of[handler].observe(seconds)
        self._response(handler, code).inc()
        if handler == "/" and code == "200":
            self.visits.inc()

    def wrap(self, app: Callable) -> Callable:
        """The WSGI app ``app``, measured."""
        handlers = frozenset(HANDLERS)
        clock = time.perf_counter
        observe = self.observe

        def measured(environ: dict, start_response: Callable) -> Iterable[bytes]:
            started = clock()
            path = environ.get("PATH_INFO", "")
            handler = path if path in handlers else "other"
            code = "500"

            def start(status: str, headers: list, exc_info: object = None) -> Callable:
                nonlocal code
                code = status[:3]
                return start_response(status, headers, exc_info)

            try:
                return app(environ, start)
            finally:
                observe(handler, code, clock() - started)

        return measured


def read_drill_result(path: str) -> dict | None:
    """The restore drill's result file: None when there is none (no drill
    yet); raises OSError or ValueError when it cannot be read or makes no sense."""
    try:
        with open(path, encoding="utf-8") as f:
            result = json.load(f)
    except FileNotFoundError:
        return None
    if not isinstance(result, dict) or not isinstance(result.get("ok"), bool):
        raise ValueError("no boolean 'ok'")
    finished = result.get("finished_unix")
    if not isinstance(finished, int | float) or isinstance(finished, bool):
        raise ValueError("no number 'finished_unix'")
    return result


class StateCollector(Collector):
    """What the app knows, read at scrape time."""

    def __init__(
        self,
        store: VisitStore,
        db_path: str,
        replication: ReplicationMonitor | None = None,
        drill_result: str = "",
        gate: ReplicationGate | None = None,
    ) -> None:
        self._store = store
        self._gate = gate
        self._db = db_path
        self._replication = replication
        self._drill_result = drill_result
        self._last_success: float | None = None  # of the drill, as seen by this process
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        yield from self._database()
        yield from self._acknowledgement()
        if self._replication is not None:
            yield from self._replication_state()
        if self._drill_result:
            with self._lock:
                yield from self._drill()

    def _database(self) -> Iterator[Metric]:
        readable = GaugeMetricFamily(
            "counter_database_readable", "1 when the app reads its database's count"
        )
        try:
            count = self._store.count()
        except Exception as error:  # noqa: BLE001 - any failure to read is the answer
            log.warning("metrics: database not readable: %s", error)
            readable.add_metric([], 0)
        else:
            readable.add_metric([], 1)
            yield GaugeMetricFamily(
                "counter_database_visits", "The count stored in the database", value=count
            )
        yield readable
        size = GaugeMetricFamily(
            "counter_database_size_bytes", "Size of the database's files", labels=["file"]
        )
        for name, suffix in (("db", ""), ("wal", "-wal")):
            with contextlib.suppress(OSError):  # no WAL yet
                size.add_metric([name], os.stat(self._db + suffix).st_size)
        yield size
        try:
            fs = os.statvfs(os.path.dirname(os.path.abspath(self._db)))
        except OSError:
            return
        yield GaugeMetricFamily(
            "counter_database_filesystem_free_bytes",
            "Bytes free for the app's account on the database's filesystem",
            value=fs.f_bavail * fs.f_frsize,
        )
        yield GaugeMetricFamily(
            "counter_database_filesystem_size_bytes",
            "Size of the database's filesystem",
            value=fs.f_blocks * fs.f_frsize,
        )

    def _acknowledgement(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "counter_ack_after_replication",
            "1 when a visit is answered only once the replica holds it; 0: once on local disk",
            value=0 if self._gate is None else 1,
        )
        if self._gate is None:
            return
        state = self._gate.state()
        yield GaugeMetricFamily(
            "counter_ack_waiting_visits",
            "Visits committed locally that wait for the replica to confirm them",
            value=state.waiting,
        )
        yield GaugeMetricFamily(
            "counter_ack_last_wait_seconds",
            "How long the last confirmed group of visits waited for the replica",
            value=state.last_wait,
        )
        syncs = CounterMetricFamily(
            "counter_ack_syncs",
            "Calls asking Litestream to sync and wait, by result",
            labels=["result"],
        )
        syncs.add_metric(["ok"], state.syncs)
        syncs.add_metric(["error"], state.sync_errors)
        yield syncs

    def _replication_state(self) -> Iterator[Metric]:
        state = self._replication.state()
        yield GaugeMetricFamily(
            "counter_replication_up",
            "1 when Litestream answered on its control socket within the last few seconds",
            value=1 if state.up else 0,
        )
        yield GaugeMetricFamily(
            "counter_replication_lag_seconds",
            "Age of the oldest write the replica has not confirmed (0: none waiting)",
            value=state.lag,
        )
        yield GaugeMetricFamily(
            "counter_replication_ready",
            "1 when /healthz is green for replication (Litestream answers, lag within the limit)",
            value=1 if state.ready else 0,
        )
        check = self._replication.replica_check()
        if check is not None:
            restorable = check.get("restorable")
            if isinstance(restorable, bool):
                yield GaugeMetricFamily(
                    "counter_replica_restorable",
                    "1 when the replica check found the replica restorable up to what "
                    "Litestream confirmed (absent while it could not check)",
                    value=1 if restorable else 0,
                )
            yield GaugeMetricFamily(
                "counter_replica_new_history_pending",
                "1 while a new replica history waits for its snapshot in the store",
                value=1 if check.get("new_history_pending") else 0,
            )
            yield CounterMetricFamily(
                "counter_replica_history_restarts",
                "New replica histories begun on this host (a new, emptied or taken-over "
                "destination, or a replica that could no longer be restored)",
                value=int(check.get("history_restarts", 0)),
            )
        if state.position is not None:
            local, replicated = state.position
            yield GaugeMetricFamily(
                "counter_replication_local_txid", "The database's last transaction ID", value=local
            )
            yield GaugeMetricFamily(
                "counter_replication_replica_txid",
                "The last transaction ID the replica confirmed",
                value=replicated,
            )

    def _drill(self) -> Iterator[Metric]:
        last_run = GaugeMetricFamily(
            "counter_restore_drill_last_run_timestamp_seconds",
            "When the last restore drill finished (0: no drill yet)",
        )
        try:
            result = read_drill_result(self._drill_result)
        except (OSError, ValueError) as error:
            # A result that cannot be read is a failed drill, never a good one.
            log.warning("metrics: restore drill result %s: %s", self._drill_result, error)
            yield GaugeMetricFamily(
                "counter_restore_drill_success", "1 when the last restore drill passed", value=0
            )
            return
        if result is None:
            last_run.add_metric([], 0)
            yield last_run
            return
        finished = float(result["finished_unix"])
        last_run.add_metric([], finished)
        yield last_run
        yield GaugeMetricFamily(
            "counter_restore_drill_success",
            "1 when the last restore drill passed",
            value=1 if result["ok"] else 0,
        )
        duration = result.get("duration_seconds")
        if isinstance(duration, int | float) and not isinstance(duration, bool):
            yield GaugeMetricFamily(
                "counter_restore_drill_duration_seconds",
                "How long the last restore drill took",
                value=duration,
            )
        if result["ok"] and (self._last_success is None or finished > self._last_success):
            self._last_success = finished
        if self._last_success is not None:
            yield GaugeMetricFamily(
                "counter_restore_drill_last_success_timestamp_seconds",
                "When the last passing restore drill finished (as seen since the app started)",
                value=self._last_success,
            )


def serve(registry: CollectorRegistry, host: str, port: int) -> object:
    """Serve ``registry`` on http://host:port/metrics from a daemon thread."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
