from __future__ import annotations

import io
import sys
import threading
from collections.abc import Iterator
from wsgiref.util import setup_testing_defaults

import pytest
import waitress

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

    def _call(method: str, path: str) -> tuple[int, dict[str, str], str]:
        environ: dict = {"REQUEST_METHOD": method, "PATH_INFO": path}
        setup_testing_defaults(environ)
        environ["wsgi.input"] = io.BytesIO(b"")
        environ["wsgi.errors"] = sys.stderr
        captured: dict = {}

        def start_response(status, headers, exc_info=None):
            captured["status"] = int(status.split()[0])
            captured["headers"] = dict(headers)

        body = b"".join(app(environ, start_response)).decode()
        return captured["status"], captured["headers"], body

    return _call


@pytest.fixture
def served(store) -> Iterator[str]:
    """The app behind a real waitress server on an ephemeral loopback port."""
    server = waitress.create_server(create_app(store), host="127.0.0.1", port=0, threads=8)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()
