"""Litestream's control socket (HTTP over a unix socket): where the database
and its replica stand (`POST /sync`). The app has its own client
(app/src/counter_app/replication.py): the two are not shared, so that
neither package depends on the other."""

from __future__ import annotations

import http.client
import json
import socket


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
    # What a caller catches when Litestream does not answer as it should
    # (not running, 409 before it opened the database, a torn answer).
    ERRORS = (OSError, ValueError, KeyError)

    def __init__(self, socket_path: str, db: str) -> None:
        self.socket_path = socket_path
        self.db = db

    def request(self, method: str, path: str, body: dict | None, timeout: float) -> dict:
        conn = _UnixHTTPConnection(self.socket_path, timeout=timeout)
        try:
            payload = json.dumps(body) if body is not None else None
            conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            data = json.loads(response.read() or b"{}")
        finally:
            conn.close()
        if response.status != 200:
            raise OSError(f"HTTP {response.status}: {data.get('error', data)}")
        return data

    def sync_position(self, wait: float = 0, timeout: float = 3) -> tuple[int, int]:
        """(local TXID, TXID the replica has confirmed). With `wait` seconds,
        Litestream uploads what is pending first and answers once the
        replica holds it."""
        body: dict = {"path": self.db}
        if wait:
            body.update(wait=True, timeout=wait)
        result = self.request("POST", "/sync", body, timeout=timeout)
        replicated = result.get("replicated_txid", result.get("replica_txid", 0))
        return int(result["txid"]), int(replicated)
