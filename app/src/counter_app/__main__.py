"""``counter-app``: serve the counter with waitress, configured by environment."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass

import waitress
from prometheus_client import CollectorRegistry

from counter_app.metrics import RequestMetrics, StateCollector, serve
from counter_app.replicated_ack import ReplicationGate
from counter_app.replication import ReplicationMonitor
from counter_app.serving import (
    DRAIN_SECONDS,
    SocketActivationError,
    inherited_socket,
    serve_until_stopped,
)
from counter_app.store import VisitStore
from counter_app.web import create_app
from litestream_control import Control

log = logging.getLogger("counter_app")

# HTTP limits that are not settings (see "Limits" in the README). The app
# takes no request body: waitress refuses a declared Content-Length of
# MAX_BODY or more with 413 as soon as the headers are in, before it reads
# any of the body, and stops a chunked body at MAX_BODY bytes. Bodies are
# buffered in memory below INBUF_OVERFLOW and spooled to a temporary file
# above it; MAX_BODY plus one read (RECV_BYTES) stays far below it, so
# nothing is ever spooled to disk.
MAX_BODY = 1024
MAX_HEADER = 8192  # request line and headers together; larger: 431
RECV_BYTES = 8192
INBUF_OVERFLOW = 65536
BACKLOG = 1024  # accepted by the kernel while the app is at its connection limit


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Config:
    db: str
    host: str
    port: int
    threads: int
    busy_timeout_ms: int
    litestream_socket: str
    max_replica_lag: int
    connection_limit: int
    idle_timeout: int
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0
    restore_drill_result: str = ""
    replica_check_result: str = ""
    ack_after_replication: bool = False
    ack_timeout: int = 10

    def __post_init__(self) -> None:
        if self.ack_after_replication and not self.litestream_socket:
            raise ConfigError(
                "COUNTER_ACK_AFTER_REPLICATION needs Litestream's control socket "
                "(COUNTER_LITESTREAM_SOCKET)"
            )

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Config:
        return cls(
            db=env.get("COUNTER_DB", "counter.db"),
            host=env.get("COUNTER_HOST", "127.0.0.1"),
            port=_int(env, "COUNTER_PORT", 8080, 1, 65535),
            threads=_int(env, "COUNTER_THREADS", 100, 1, 256),
            busy_timeout_ms=_int(env, "COUNTER_BUSY_TIMEOUT_MS", 5000, 0, 600_000),
            litestream_socket=env.get("COUNTER_LITESTREAM_SOCKET", ""),
            max_replica_lag=_int(env, "COUNTER_MAX_REPLICA_LAG", 10, 1, 3600),
            connection_limit=_int(env, "COUNTER_CONNECTION_LIMIT", 100, 10, 10_000),
            idle_timeout=_int(env, "COUNTER_IDLE_TIMEOUT", 10, 1, 3600),
            metrics_host=env.get("COUNTER_METRICS_HOST", "127.0.0.1"),
            metrics_port=_int(env, "COUNTER_METRICS_PORT", 0, 0, 65535),
            restore_drill_result=env.get("COUNTER_RESTORE_DRILL_RESULT", ""),
            replica_check_result=env.get("COUNTER_REPLICA_CHECK_RESULT", ""),
            ack_after_replication=_flag(env, "COUNTER_ACK_AFTER_REPLICATION"),
            ack_timeout=_int(env, "COUNTER_ACK_TIMEOUT", 10, 1, 300),
        )

    def waitress_settings(self) -> dict[str, object]:
        """waitress's adjustments, every limit given explicitly (not left to
        waitress's defaults, which accept 1 GiB bodies and 256 KiB headers)."""
        return {
            "host": self.host,
            "port": self.port,
            "threads": self.threads,
            "max_request_body_size": MAX_BODY,
            "max_request_header_size": MAX_HEADER,
            "recv_bytes": RECV_BYTES,
            "inbuf_overflow": INBUF_OVERFLOW,
            # Open connections, idle or not, the listener and waitress's
            # wake-up pipe included; beyond it waitress stops accepting and
            # new clients wait in the kernel's backlog.
            "connection_limit": self.connection_limit,
            "backlog": BACKLOG,
            # A connection that sends and receives nothing for idle_timeout
            # seconds (and has no request in progress) is closed; waitress
            # looks every cleanup_interval seconds.
            "channel_timeout": self.idle_timeout,
            "cleanup_interval": 1,
            "expose_tracebacks": False,
            "ident": "counter-app",
        }


def _int(env: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is outside {low}..{high}")
    return value


def _flag(env: dict[str, str], name: str) -> bool:
    raw = env.get(name, "")
    if raw.lower() in ("", "0", "false", "no"):
        return False
    if raw.lower() in ("1", "true", "yes"):
        return True
    raise ConfigError(f"{name}={raw!r} is not a boolean (1/0, true/false, yes/no)")


def create_server(
    app: object, config: Config, sock: socket.socket | None = None
) -> waitress.server.BaseWSGIServer:
    """The app behind waitress, with the limits of ``config``, on ``sock``
    (a listening socket, systemd's) or else on a socket of its own bound to
    config.host:config.port."""
    settings = config.waitress_settings()
    if sock is not None:
        # waitress refuses host or port together with sockets.
        del settings["host"], settings["port"]
        settings["sockets"] = [sock]
    return waitress.create_server(app, **settings)


def drain_seconds(config: Config) -> float:
    """How long a stop waits for the requests in progress: a visit may wait
    the ack timeout for the replica on top."""
    return DRAIN_SECONDS + (config.ack_timeout if config.ack_after_replication else 0)


def _restart_for(error: BaseException) -> None:
    # A failed flush: this process counts nothing more (the store refuses);
    # stop it so systemd restarts it, and SQLite recovers from the disk.
    log.critical("%s; stopping for a restart", error)
    os.kill(os.getpid(), signal.SIGTERM)


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    # waitress warns of every request that waits for a thread ("Task queue
    # depth is N"): under load that is a journal line per request, which
    # costs the server more than the request itself.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)


def main() -> int:
    configure_logging()
    try:
        config = Config.from_env(dict(os.environ))
    except ConfigError as error:
        log.error("configuration error: %s", error)
        return 2
    try:
        sock = inherited_socket()
    except SocketActivationError as error:
        log.error("socket activation: %s", error)
        return 2
    control = Control(config.litestream_socket, os.path.abspath(config.db))
    gate = None
    if config.ack_after_replication:
        gate = ReplicationGate(
            sync=lambda wait: control.sync_position(wait=wait, timeout=wait + 3),
            timeout=config.ack_timeout,
        )
        log.info(
            "visits are acknowledged once the replica holds them (bound %d s)", config.ack_timeout
        )
    store = VisitStore(
        config.db,
        busy_timeout_ms=config.busy_timeout_ms,
        on_log_flush_error=_restart_for,
        gate=gate,
    )
    replication = None
    if config.litestream_socket:
        replication = ReplicationMonitor(
            query=lambda: control.sync_position(timeout=2),
            push=lambda: control.sync_position(wait=10, timeout=13),
            max_lag=config.max_replica_lag,
            replica_check=config.replica_check_result,
        )
        replication.start()
    app = create_app(store, replication, gate)
    metrics_server = None
    if config.metrics_port:
        # Metrics on a listener of their own (0: none).
        registry = CollectorRegistry()
        app = RequestMetrics(registry).wrap(app)
        db = os.path.abspath(config.db)
        registry.register(StateCollector(store, db, replication, config.restore_drill_result, gate))
        metrics_server = serve(registry, config.metrics_host, config.metrics_port)
        log.info("metrics on http://%s:%d/metrics", config.metrics_host, config.metrics_port)
    server = create_server(app, config, sock)
    where = "the socket systemd passed" if sock is not None else "a socket it bound"
    log.info(
        "serving %s on http://%s:%s/ (listening on %s)",
        config.db,
        server.effective_host,
        server.effective_port,
        where,
    )
    try:
        # Until SIGTERM or SIGINT; then stops accepting and drains.
        serve_until_stopped(server, drain_seconds(config))
    finally:
        server.close()
        if metrics_server is not None:
            metrics_server.shutdown()
        if replication is not None:
            replication.stop()
        store.close()
        if gate is not None:
            gate.close()
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
