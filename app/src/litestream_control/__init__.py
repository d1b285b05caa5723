"""Litestream's control socket (HTTP over a unix socket): where a database
and its replica stand (``POST /sync``).

One client for both sides of a host: the app asks it once a second for its
readiness; litestream-guard asks it before a stop, for the replica check,
the restore drill and a point-in-time restore. It lives in the app's
distribution (``src/``) and guard/build.py puts the same files into the
guard's one-file build, so neither package depends on the other. Standard
library only: the guard runs on Debian's python3 with nothing else.
"""

from __future__ import annotations

import http.client
import json
import socket

Position = tuple[int, int]  # (local TXID, TXID the replica has confirmed)

# What a caller catches when Litestream does not answer as it should (not
# running, 409 before it opened the database, a torn or strange answer).
ERRORS = (OSError, ValueError, KeyError)


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("litestream", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class Control:
    """One database's side of Litestream's control socket."""

    ERRORS = ERRORS

    def __init__(self, socket_path: str, db: str) -> None:
        self.socket_path = socket_path
        self.db = db

    def request(self, method: str, path: str, body: dict | None, timeout: float) -> dict:
        """Litestream's JSON answer; OSError when it is not 200."""
        conn = _UnixHTTPConnection(self.socket_path, timeout=timeout)
        try:
            payload = json.dumps(body) if body is not None else None
            conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            data = json.loads(response.read() or b"{}")
        finally:
            conn.close()
        if response.status != 200:
            error = data.get("error", data) if isinstance(data, dict) else data
            raise OSError(f"Litestream answered {response.status}: {error}")
        if not isinstance(data, dict):
            raise ValueError(f"Litestream's answer is not a JSON object: {data!r}")
        return data

    def sync_position(self, wait: int = 0, timeout: float = 3) -> Position:
        """(local TXID, TXID the replica has confirmed). With ``wait``
        seconds (whole, at least 1: Litestream reads an integer), Litestream
        uploads what is pending at once and answers when the replica holds
        it; after a store outage this cuts its retry back-off, which grows to
        minutes, short. ``timeout`` bounds the whole request (give it more
        than ``wait``)."""
        body: dict = {"path": self.db}
        if wait:
            body.update(wait=True, timeout=max(1, int(wait)))
        result = self.request("POST", "/sync", body, timeout=timeout)
        replicated = result.get("replicated_txid", result.get("replica_txid", 0))
        return int(result["txid"]), int(replicated)
