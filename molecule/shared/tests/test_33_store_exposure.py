"""What the S3 store shows the network: the S3 API over HTTPS and nothing
else that answers without this host's own certificate."""

from __future__ import annotations

import ipaddress
import json

import pytest

from conftest import STORE, app_name

pytestmark = pytest.mark.s3

# (Read with defaults: this module is collected, then deselected, in the
# SFTP scenario too.)
S3_PORT = int(STORE.get("s3_port", 0))
# The S3 gateway's gRPC port follows the S3 address (SeaweedFS has no
# setting to move it): it must refuse whoever has no certificate of the
# store's internal CA.
S3_GRPC_PORT = S3_PORT + 10000
# Master, volume and filer (HTTP and gRPC), and what `weed mini` opened:
# admin 23646 and its gRPC 33646, Iceberg 8181, Lance 9101.
CLOSED_PORTS = sorted({*STORE.get("s3_internal_ports", []), 23646, 33646, 8181, 9101})

# From an app host: which ports of the storage host accept a connection.
_CONNECT = r"""
import json, socket, sys
host, ports = sys.argv[1], json.loads(sys.argv[2])
found = {}
for port in ports:
    with socket.socket() as s:
        s.settimeout(5)
        found[port] = s.connect_ex((host, port))
print(json.dumps(found))
"""

# What the S3 gateway's gRPC port answers an HTTP/2 (gRPC) client without a
# client certificate: in the clear, and over TLS.
_GRPC_PROBE = r"""
import json, socket, ssl, sys
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
        with socket.create_connection((host, port), timeout=10) as raw:
            with ctx.wrap_socket(raw) as s:
                s.sendall(PREFACE)
                return {"answer": s.recv(100).hex()}
    except (OSError, ssl.SSLError) as e:
        return {"error": f"{type(e).__name__}: {e}"}
print(json.dumps({"plain": plain(), "tls": tls()}))
"""

# An anonymous GET of the S3 API's root, over http:// or https:// (the
# latter checked against the host's trust store).
_GET = r"""
import json, sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
        print(json.dumps({"status": r.status, "body": r.read().decode()}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": e.read().decode()}))
except OSError as e:
    print(json.dumps({"status": 0, "body": str(e)}))
"""


def listening(storage) -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket of the storage host."""
    found = []
    for line in storage.check_output("ss -ltnH").splitlines():
        local = line.split()[3]
        address, port = local.rsplit(":", 1)
        found.append((address.strip("[]").split("%")[0], int(port)))
    return found


# How ss shows a socket bound to every address.
WILDCARDS = ("*", "0.0.0.0", "::")  # noqa: S104 - what is looked for, not bound


def is_loopback(address: str) -> bool:
    return address not in WILDCARDS and ipaddress.ip_address(address).is_loopback


def test_beyond_loopback_only_ssh_and_s3_listen(storage):
    outside = {port for address, port in listening(storage) if not is_loopback(address)}
    allowed = {S3_PORT, S3_GRPC_PORT} | ({22} if storage.service("ssh").is_running else set())
    assert outside <= allowed, sorted(outside)
    assert S3_PORT in outside
    # Nothing on every address at once.
    wildcard = [(a, p) for a, p in listening(storage) if a in WILDCARDS]
    assert not wildcard, wildcard


def test_the_internal_ports_are_closed_to_other_hosts(app, storage):
    found = json.loads(
        app.check_output(
            "python3 -c %s %s %s", _CONNECT, app_name(storage), json.dumps(CLOSED_PORTS)
        )
    )
    opened = [port for port, error in found.items() if error == 0]
    assert not opened, f"{app_name(storage)} accepts connections on {opened}"


def test_the_s3_grpc_port_refuses_clients_without_the_internal_certificate(app, storage):
    probe = json.loads(
        app.check_output("python3 -c %s %s %s", _GRPC_PROBE, app_name(storage), str(S3_GRPC_PORT))
    )
    # In the clear: the TLS server closes the connection (no HTTP/2 frame).
    assert probe["plain"].get("answer", "") == "", probe
    # TLS without a client certificate: the handshake is refused.
    assert "CERTIFICATE_REQUIRED" in probe["tls"].get("error", "").upper(), probe


def test_the_s3_api_speaks_https_only(app, storage):
    plain = json.loads(
        app.check_output("python3 -c %s %s", _GET, f"http://{app_name(storage)}:{S3_PORT}/")
    )
    # Go's TLS server answers plain HTTP with 400 and serves nothing.
    assert plain["status"] in (0, 400), plain
    assert "AccessDenied" not in plain["body"] and "ListAllMyBuckets" not in plain["body"], plain
    # HTTPS, checked against the CA the app host trusts: an anonymous request
    # reaches S3 and is refused.
    secure = json.loads(app.check_output("python3 -c %s %s", _GET, STORE["s3_endpoint"] + "/"))
    assert secure["status"] == 403 and "AccessDenied" in secure["body"], secure
