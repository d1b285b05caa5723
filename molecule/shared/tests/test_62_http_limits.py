"""HTTP limits as a client meets them on the app host's port."""

from __future__ import annotations

import json

from conftest import IDLE_TIMEOUT, PORT, visit

# Raw requests over a socket from the app host to its loopback (urllib would
# send the body it declares). Prints, per request: the status answered (0:
# none), the seconds until the server closed, and the start of the answer.
_RAW = r"""
import json, socket, sys, time
port, wait = int(sys.argv[1]), float(sys.argv[2])
requests = {
    # 10 MB declared, not one byte of it sent.
    "big_body": b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n",
    "big_header": b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 16384 + b"\r\n\r\n",
    # Connects and says nothing.
    "idle": b"",
}
out = {}
for name, data in requests.items():
    started = time.monotonic()
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(data)
        try:
            while chunk := s.recv(65536):
                got += chunk
        except ConnectionResetError:
            pass
        except TimeoutError:
            got += b" [still open]"
    status = int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/1.") else 0
    out[name] = {"status": status, "seconds": round(time.monotonic() - started, 2),
                 "answer": got[:120].decode("latin-1")}
print(json.dumps(out))
"""


def test_big_bodies_big_headers_and_idle_clients_are_refused_without_counting(app):
    before = visit(app)
    wait = str(IDLE_TIMEOUT + 10)
    answers = json.loads(app.check_output("python3 -c %s %s %s", _RAW, str(PORT), wait))
    big_body, big_header, idle = answers["big_body"], answers["big_header"], answers["idle"]
    # Refused on the declared length, at once: the body was never sent.
    assert big_body["status"] == 413, answers
    assert big_body["seconds"] < 5, answers
    assert big_header["status"] in (400, 431), answers
    assert big_header["seconds"] < 5, answers
    # Closed after the idle timeout (waitress looks once a second).
    assert idle["status"] == 0 and "still open" not in idle["answer"], answers
    assert IDLE_TIMEOUT - 1 <= idle["seconds"] <= IDLE_TIMEOUT + 5, answers
    assert visit(app) == before + 1, "refused requests do not count"
