"""Raw requests over a socket to the app on loopback (urllib would send the
body it declares). Prints, per request: the status answered (0: none), the
seconds until the server closed, and the start of the answer.

    python3 -c "$(cat raw_requests.py)" PORT WAIT
"""

import json
import socket
import sys
import time

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
    out[name] = {
        "status": status,
        "seconds": round(time.monotonic() - started, 2),
        "answer": got[:120].decode("latin-1"),
    }
print(json.dumps(out))
