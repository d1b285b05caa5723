"""metrics: what the guard knows of every database of the host, in
Prometheus's text format, for the alerts of any app's database.

The counter exports its own database's replication, replica check and
restore drill (its metrics listener). Another app knows nothing of them, so
the guard says them for every database of the host (label ``database``: the
name in litestream_databases, "" for the host's first): whether Litestream
answers on its control socket, the local and replicated transaction IDs
(the alert compares the replica's position with the local one of a moment
ago), the replica check's result and the restore drill's.

Served by systemd (litestream-guard-metrics.socket, one process per scrape,
``--http``: the scrape's request on stdin, the answer on stdout); no daemon of
ours, and nothing here reaches the store: each scrape costs a POST /sync on
each control socket and a few small files read.
"""

from __future__ import annotations

import argparse
import json
import math
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from litestream_control import Control

from . import settings as settings_module
from .errors import Refused
from .host import Host
from .settings import Settings
from .state import read_json

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# A scrape's request: its head is a few hundred bytes; more is not Prometheus.
MAX_REQUEST = 8192
REQUEST_TIMEOUT = 5.0

HELP = {
    "litestream_guard_settings_readable": (
        "gauge",
        "1 when the guard reads the database's settings (0: nothing else is known of it)",
    ),
    "litestream_guard_replication_up": (
        "gauge",
        "1 when Litestream answered on the database's control socket",
    ),
    "litestream_guard_local_txid": ("gauge", "The database's last transaction ID (Litestream's)"),
    "litestream_guard_replicated_txid": (
        "gauge",
        "The last transaction ID the replica confirmed (Litestream's)",
    ),
    "litestream_guard_replica_restorable": (
        "gauge",
        "1 when the last replica check found the replica restorable up to what Litestream "
        "confirmed (absent while it could not check)",
    ),
    "litestream_guard_replica_check_timestamp_seconds": (
        "gauge",
        "When the replica check last published its result",
    ),
    "litestream_guard_replica_new_history_pending": (
        "gauge",
        "1 while a new replica history waits for its snapshot in the store",
    ),
    "litestream_guard_replica_history_restarts_total": (
        "counter",
        "New replica histories begun for the database on this host",
    ),
    "litestream_guard_restore_drill_success": (
        "gauge",
        "1 when the last restore drill passed (0 too when its result cannot be read)",
    ),
    "litestream_guard_restore_drill_last_run_timestamp_seconds": (
        "gauge",
        "When the last restore drill finished (0: no drill yet)",
    ),
    "litestream_guard_restore_drill_duration_seconds": (
        "gauge",
        "How long the last restore drill took",
    ),
}


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "metrics",
        help="every database of the host: replication, replica check, restore drill "
        "(Prometheus text format)",
    )
    parser.add_argument(
        "--http",
        action="store_true",
        help="answer one HTTP request on stdin/stdout (a socket of systemd's, Accept=yes)",
    )
    parser.set_defaults(run=run, whole_host=True)


def run(host: Host | None, opts: argparse.Namespace) -> None:
    def body() -> str:
        return exposition(collect(settings_module.every_database()))

    if opts.http:
        serve_one(body)
    else:
        sys.stdout.write(body())


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def drill_samples(result_path: Path) -> Iterator[tuple[str, float]]:
    """The restore drill's result file as samples: none yet is a last run of
    0; a file that cannot be read or makes no sense is a failed drill,
    never a good one."""
    try:
        result = json.loads(result_path.read_text())
    except FileNotFoundError:
        yield "litestream_guard_restore_drill_last_run_timestamp_seconds", 0
        return
    except (OSError, ValueError):
        result = None
    finished = _number(result.get("finished_unix")) if isinstance(result, dict) else None
    ok = result.get("ok") if isinstance(result, dict) else None
    if finished is None or not isinstance(ok, bool):
        yield "litestream_guard_restore_drill_success", 0
        return
    yield "litestream_guard_restore_drill_last_run_timestamp_seconds", finished
    yield "litestream_guard_restore_drill_success", 1 if ok else 0
    duration = _number(result.get("duration_seconds"))
    if duration is not None:
        yield "litestream_guard_restore_drill_duration_seconds", duration


def database_samples(settings: Settings, timeout: float = 2.0) -> Iterator[tuple[str, float]]:
    """One database's samples (name, value)."""
    control = Control(settings.socket, str(settings.db))
    try:
        local, replicated = control.sync_position(timeout=timeout)
    except Control.ERRORS:
        yield "litestream_guard_replication_up", 0
    else:
        yield "litestream_guard_replication_up", 1
        yield "litestream_guard_local_txid", local
        yield "litestream_guard_replicated_txid", replicated
    check = read_json(settings.state_dir / "replica.json")
    if check is not None:
        restorable = check.get("restorable")
        if isinstance(restorable, bool):
            yield "litestream_guard_replica_restorable", 1 if restorable else 0
        checked = _number(check.get("checked_unix"))
        if checked is not None:
            yield "litestream_guard_replica_check_timestamp_seconds", checked
        yield (
            "litestream_guard_replica_new_history_pending",
            (1 if check.get("new_history_pending") else 0),
        )
        restarts = _number(check.get("history_restarts"))
        yield "litestream_guard_replica_history_restarts_total", restarts or 0
    if settings.drill is not None:
        yield from drill_samples(settings.drill.result)


def collect(
    found: list[tuple[str, Path]],
) -> dict[str, list[tuple[str, float]]]:
    """Samples by metric name, each (database label, value)."""
    samples: dict[str, list[tuple[str, float]]] = {}
    for label, path in found:
        try:
            settings = settings_module.load(path)
        except Refused:
            samples.setdefault("litestream_guard_settings_readable", []).append((label, 0))
            continue
        samples.setdefault("litestream_guard_settings_readable", []).append((label, 1))
        for name, value in database_samples(settings):
            samples.setdefault(name, []).append((label, value))
    return samples


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _value(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def exposition(samples: dict[str, list[tuple[str, float]]]) -> str:
    lines = []
    for name, values in samples.items():
        kind, text = HELP[name]
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        lines += [f'{name}{{database="{_label(label)}"}} {_value(v)}' for label, v in values]
    return "\n".join(lines) + "\n"


def answer(request: bytes, body: Callable[[], str]) -> bytes:
    """The HTTP answer to one request's head: the body for GET /metrics (or
    /), 404 for another path, 405 for another method, 400 for nonsense."""
    line = request.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return _http(400, "text/plain", "bad request\n", head_only=False)
    method, target = parts[0], parts[1].split("?", 1)[0]
    if method not in ("GET", "HEAD"):
        return _http(405, "text/plain", "GET only\n", head_only=False)
    if target not in ("/metrics", "/"):
        return _http(404, "text/plain", "not found: /metrics\n", head_only=method == "HEAD")
    return _http(200, CONTENT_TYPE, body(), head_only=method == "HEAD")


REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


def _http(code: int, content_type: str, body: str, head_only: bool) -> bytes:
    data = body.encode()
    head = (
        f"HTTP/1.0 {code} {REASONS[code]}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(data)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    return head if head_only else head + data


def read_request(conn: socket.socket, timeout: float = REQUEST_TIMEOUT) -> bytes:
    """The request's head (up to its blank line), within ``timeout``."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\r\n\r\n" not in data and len(data) < MAX_REQUEST:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        conn.settimeout(left)
        try:
            chunk = conn.recv(4096)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return data


def serve_one(body: Callable[[], str], fd: int = 0) -> None:
    """Answer the connection systemd handed over as ``fd``."""
    conn = socket.socket(fileno=fd)
    try:
        conn.sendall(answer(read_request(conn), body))
        conn.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the scraper went away
    finally:
        conn.detach()
