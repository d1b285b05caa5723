"""What a gRPC (HTTP/2) port answers a client without a certificate: in the
clear, and over TLS. Prints {"plain": ..., "tls": ...}.

    python3 -c "$(cat grpc_probe.py)" HOST PORT
"""

import json
import socket
import ssl
import sys

host, port = sys.argv[1], int(sys.argv[2])
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def plain():
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(PREFACE)
        try:
            return {"answer": s.recv(100).hex()}
        except OSError as e:
            return {"error": str(e)}


def tls():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection((host, port), timeout=10) as raw,
            ctx.wrap_socket(raw) as s,
        ):
            s.sendall(PREFACE)
            return {"answer": s.recv(100).hex()}
    except (OSError, ssl.SSLError) as e:
        return {"error": f"{type(e).__name__}: {e}"}


print(json.dumps({"plain": plain(), "tls": tls()}))
