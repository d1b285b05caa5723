"""Metrics: per-request counters, the state read at scrape time, the listener."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from test_main import _env, _free_port
from test_replication import Clock, Litestream
from webtest_call import call_app

from counter_app import create_app
from counter_app.metrics import RequestMetrics, StateCollector
from counter_app.replication import ReplicationMonitor

LAST_SUCCESS = "counter_restore_drill_last_success_timestamp_seconds"


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_requests_counted_by_handler_and_status(store, registry):
    app = RequestMetrics(registry).wrap(create_app(store))
    for path in ("/", "/", "/livez", "/nope", "/healthz"):
        call_app(app, "GET", path)
    call_app(app, "HEAD", "/")
    assert value(registry, "counter_visits_total") == 2
    assert value(registry, "counter_http_responses_total", handler="/", code="200") == 2
    assert value(registry, "counter_http_responses_total", handler="/", code="405") == 1
    assert value(registry, "counter_http_responses_total", handler="other", code="404") == 1
    assert value(registry, "counter_http_responses_total", handler="/livez", code="200") == 1
    assert value(registry, "counter_http_request_duration_seconds_count", handler="/") == 3
    assert value(registry, "counter_http_request_duration_seconds_count", handler="other") == 1
    bucket = "counter_http_request_duration_seconds_bucket"
    assert value(registry, bucket, handler="/", le="+Inf") == 3


def test_unknown_paths_share_one_label(store, registry):
    app = RequestMetrics(registry).wrap(create_app(store))
    for n in range(50):
        call_app(app, "GET", f"/x{n}")
    text = generate_latest(registry).decode()
    assert "/x1" not in text
    assert "_created" not in text
    assert value(registry, "counter_http_responses_total", handler="other", code="404") == 50


def test_database_state(store, db_path, registry):
    store.record_visit()
    store.record_visit()
    registry.register(StateCollector(store, db_path))
    assert value(registry, "counter_database_visits") == 2
    assert value(registry, "counter_database_readable") == 1
    assert value(registry, "counter_database_size_bytes", file="db") == os.stat(db_path).st_size
    free = value(registry, "counter_database_filesystem_free_bytes")
    size = value(registry, "counter_database_filesystem_size_bytes")
    assert 0 < free <= size
    # No replication monitor, no drill result path: neither is exported.
    text = generate_latest(registry).decode()
    assert "counter_replication_" not in text
    assert "counter_restore_drill_" not in text


def test_replication_state(store, db_path, registry):
    clock, litestream = Clock(), Litestream()
    monitor = ReplicationMonitor(litestream, max_lag=10, clock=clock)
    registry.register(StateCollector(store, db_path, monitor))
    assert value(registry, "counter_replication_up") == 0  # no answer yet
    litestream.local, litestream.replicated = 5, 5
    monitor.poll()
    assert value(registry, "counter_replication_up") == 1
    assert value(registry, "counter_replication_lag_seconds") == 0
    assert value(registry, "counter_replication_local_txid") == 5
    assert value(registry, "counter_replication_replica_txid") == 5
    # The store goes away: writes pile up and the lag grows with time.
    for _ in range(12):
        litestream.local += 1
        monitor.poll()
        clock.now += 1
    assert value(registry, "counter_replication_lag_seconds") == 12
    assert value(registry, "counter_replication_ready") == 0
    assert value(registry, "counter_replication_up") == 1
    # Litestream stops answering.
    litestream.error = "connection refused"
    clock.now += 10
    monitor.poll()
    assert value(registry, "counter_replication_up") == 0


def _drill(path, **result) -> None:
    base = {
        "ok": True,
        "finished_unix": 1_700_000_000.5,
        "finished_at": "2023-11-14T22:13:20Z",
        "duration_seconds": 3.25,
        "replica_txid": 7,
        "restored_count": 5,
        "live_count": 5,
        "error": "",
    }
    path.write_text(json.dumps(base | result))


def test_restore_drill_result(store, db_path, registry, tmp_path):
    result = tmp_path / "result.json"
    registry.register(StateCollector(store, db_path, drill_result=str(result)))
    # No file: no drill yet.
    assert value(registry, "counter_restore_drill_last_run_timestamp_seconds") == 0
    assert value(registry, "counter_restore_drill_success") is None
    _drill(result)
    assert value(registry, "counter_restore_drill_success") == 1
    assert value(registry, "counter_restore_drill_last_run_timestamp_seconds") == 1_700_000_000.5
    assert value(registry, LAST_SUCCESS) == 1_700_000_000.5
    assert value(registry, "counter_restore_drill_duration_seconds") == 3.25
    # A later failure: the last success stays where it was.
    _drill(result, ok=False, finished_unix=1_700_086_400.0, restored_count=None, error="boom")
    assert value(registry, "counter_restore_drill_success") == 0
    assert value(registry, "counter_restore_drill_last_run_timestamp_seconds") == 1_700_086_400.0
    assert value(registry, LAST_SUCCESS) == 1_700_000_000.5


@pytest.mark.parametrize(
    "content", ["{", "[]", '{"ok": "yes", "finished_unix": 1}', '{"ok": true}']
)
def test_unreadable_drill_result_is_a_failure(store, db_path, registry, tmp_path, content):
    result = tmp_path / "result.json"
    result.write_text(content)
    registry.register(StateCollector(store, db_path, drill_result=str(result)))
    assert value(registry, "counter_restore_drill_success") == 0


def test_metrics_listener_is_separate_from_the_app(tmp_path):
    port, metrics_port = _free_port(), _free_port()
    result = tmp_path / "result.json"
    _drill(result)
    env = _env(
        COUNTER_DB=str(tmp_path / "c.db"),
        COUNTER_PORT=str(port),
        COUNTER_METRICS_PORT=str(metrics_port),
        COUNTER_RESTORE_DRILL_RESULT=str(result),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "counter_app"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
                break
            except OSError:
                time.sleep(0.1)
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
        assert error.value.code == 404
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        assert "counter_visits_total 1.0" in text
        assert "counter_database_visits 1.0" in text
        assert "counter_restore_drill_success 1.0" in text
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert f"metrics on http://127.0.0.1:{metrics_port}/metrics" in stderr
