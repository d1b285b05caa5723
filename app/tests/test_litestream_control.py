"""The control-socket client the app and the guard share, against a unix
socket server that answers as Litestream's /sync does."""

from __future__ import annotations

import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import pytest

from litestream_control import ERRORS, Control


class _Handler(BaseHTTPRequestHandler):
    answers: ClassVar[list] = []
    seen: ClassVar[list] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append((self.path, body))
        status, payload = self.answers.pop(0)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def litestream(tmp_path):
    """A socket answering _Handler.answers in order; yields its path."""
    path = str(tmp_path / "litestream.sock")
    server = _UnixHTTPServer(path, _Handler)
    _Handler.answers, _Handler.seen = [], []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield path
    server.shutdown()
    server.server_close()


def test_sync_position_speaks_litestreams_control_socket(litestream):
    _Handler.answers = [
        (200, {"status": "no_change", "path": "/db", "txid": 7, "replicated_txid": 5}),
        (200, {"status": "synced", "path": "/db", "txid": 9, "replicated_txid": 9}),
    ]
    control = Control(litestream, "/db")
    assert control.sync_position() == (7, 5)
    # Litestream reads the timeout as a whole number of seconds: a float
    # would be refused with a 400.
    assert control.sync_position(wait=2.7, timeout=6) == (9, 9)
    assert _Handler.seen == [
        ("/sync", {"path": "/db"}),
        ("/sync", {"path": "/db", "wait": True, "timeout": 2}),
    ]


def test_an_answer_that_is_not_200_or_not_a_position_is_an_error(litestream):
    _Handler.answers = [
        (409, {"error": "database not open"}),
        (200, ["not", "an", "object"]),
        (200, {"status": "no_change"}),
    ]
    control = Control(litestream, "/db")
    with pytest.raises(OSError, match="409: database not open"):
        control.sync_position(wait=1, timeout=4)
    with pytest.raises(ValueError, match="not a JSON object"):
        control.sync_position()
    with pytest.raises(ERRORS):
        control.sync_position()


def test_no_litestream_is_an_error_the_callers_catch(tmp_path):
    with pytest.raises(ERRORS):
        Control(str(tmp_path / "none.sock"), "/db").sync_position(timeout=1)
