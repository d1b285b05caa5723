"""Call a WSGI app in-process: (status, headers, body)."""

from __future__ import annotations

import io
import sys
from wsgiref.util import setup_testing_defaults


def call_app(app, method: str, path: str) -> tuple[int, dict[str, str], str]:
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
