"""``counter-app``: serve the counter with waitress, configured by environment."""

from __future__ import annotations

import logging
import os
import signal
import sys
from dataclasses import dataclass

import waitress

from counter_app.replication import ReplicationMonitor, socket_position
from counter_app.store import VisitStore
from counter_app.web import create_app

log = logging.getLogger("counter_app")


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

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Config:
        return cls(
            db=env.get("COUNTER_DB", "counter.db"),
            host=env.get("COUNTER_HOST", "127.0.0.1"),
            port=_int(env, "COUNTER_PORT", 8080, 1, 65535),
            threads=_int(env, "COUNTER_THREADS", 8, 1, 256),
            busy_timeout_ms=_int(env, "COUNTER_BUSY_TIMEOUT_MS", 5000, 0, 600_000),
            litestream_socket=env.get("COUNTER_LITESTREAM_SOCKET", ""),
            max_replica_lag=_int(env, "COUNTER_MAX_REPLICA_LAG", 10, 1, 3600),
        )


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


def _stop(signum: int, _frame: object) -> None:
    # waitress's loop turns SystemExit into a graceful shutdown: it stops
    # accepting and lets requests in flight finish.
    log.info("received %s, shutting down", signal.Signals(signum).name)
    raise SystemExit(0)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    try:
        config = Config.from_env(dict(os.environ))
    except ConfigError as error:
        log.error("configuration error: %s", error)
        return 2
    store = VisitStore(config.db, busy_timeout_ms=config.busy_timeout_ms)
    replication = None
    if config.litestream_socket:
        db = os.path.abspath(config.db)
        replication = ReplicationMonitor(
            query=lambda: socket_position(config.litestream_socket, db),
            push=lambda: socket_position(config.litestream_socket, db, wait=True, timeout=10),
            max_lag=config.max_replica_lag,
        )
        replication.start()
    server = waitress.create_server(
        create_app(store, replication), host=config.host, port=config.port, threads=config.threads
    )
    signal.signal(signal.SIGTERM, _stop)
    log.info("serving %s on http://%s:%d/", config.db, config.host, config.port)
    try:
        server.run()
    finally:
        server.close()
        if replication is not None:
            replication.stop()
        store.close()
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
