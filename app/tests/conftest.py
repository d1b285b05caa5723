from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Iterator

import pytest
from webtest_call import call_app

from counter_app import VisitStore, create_app
from counter_app.__main__ import Config, create_server


@pytest.fixture
def db_path(tmp_path) -> str:
    return str(tmp_path / "counter.db")


@pytest.fixture
def store(db_path) -> Iterator[VisitStore]:
    store = VisitStore(db_path)
    yield store
    store.close()


@pytest.fixture
def call(store):
    """Call the WSGI app in-process: call(method, path) -> (status, headers, body)."""
    app = create_app(store)
    return lambda method, path: call_app(app, method, path)


def start_server(store: VisitStore, env: dict[str, str]):
    """The app behind a real waitress server, set up as ``counter-app`` sets it
    up from the environment ``env``, on an ephemeral loopback port."""
    config = dataclasses.replace(Config.from_env(env), host="127.0.0.1", port=0)
    server = create_server(create_app(store), config)
    threading.Thread(target=_run, args=(server,), daemon=True).start()
    return server


def _run(server) -> None:
    # The test closes the server under its loop: the loop ends there.
    with contextlib.suppress(OSError, ValueError):
        server.run()


@pytest.fixture
def serve(store) -> Iterator[Callable[..., int]]:
    """serve(COUNTER_...=value) starts the app; returns its port."""
    servers = []

    def start(**env: str) -> int:
        servers.append(start_server(store, env))
        return servers[-1].effective_port

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def served(serve) -> str:
    """The app behind a real waitress server on an ephemeral loopback port."""
    return f"http://127.0.0.1:{serve()}"
