from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import waitress
from webtest_call import call_app

from counter_app import VisitStore, create_app


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


@pytest.fixture
def served(store) -> Iterator[str]:
    """The app behind a real waitress server on an ephemeral loopback port."""
    server = waitress.create_server(create_app(store), host="127.0.0.1", port=0, threads=8)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()
