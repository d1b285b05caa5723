"""Call a WSGI app in-process: (status, body)."""

from __future__ import annotations

import io
import sys
from wsgiref.util import setup_testing_defaults


def call_app(app, path: str, method: str = "GET") -> tuple[int, str]:
    environ: dict = {"REQUEST_METHOD": method, "PATH_INFO": path}
    setup_testing_defaults(environ)
    environ["wsgi.input"] = io.BytesIO(b"")
    environ["wsgi.errors"] = sys.stderr
    captured: dict = {}

    def start_response(status, headers, exc_info=None):
        captured["status"] = int(status.split()[0])

    body = b"".join(app(environ, start_response)).decode()
    return captured["status"], body
