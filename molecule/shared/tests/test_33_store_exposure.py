"""What the S3 store shows the network: the S3 API over HTTPS and nothing
else that answers without this host's own certificate."""

from __future__ import annotations

import ipaddress
import json

import pytest

import programs
from deployment import STORE
from hosts import app_name, http_get

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
            "python3 -c %s %s %s",
            programs.text("connect.py"),
            app_name(storage),
            json.dumps(CLOSED_PORTS),
        )
    )
    opened = [port for port, error in found.items() if error == 0]
    assert not opened, f"{app_name(storage)} accepts connections on {opened}"


def test_the_s3_grpc_port_refuses_clients_without_the_internal_certificate(storage):
    # From the storage host itself (to its own address): other hosts do not
    # reach the port at all (the host firewall, test_34_host_firewall.py).
    probe = json.loads(
        storage.check_output(
            "python3 -c %s %s %s",
            programs.text("grpc_probe.py"),
            app_name(storage),
            str(S3_GRPC_PORT),
        )
    )
    # In the clear: the TLS server closes the connection (no HTTP/2 frame).
    assert probe["plain"].get("answer", "") == "", probe
    # TLS without a client certificate: the handshake is refused.
    assert "CERTIFICATE_REQUIRED" in probe["tls"].get("error", "").upper(), probe


def test_the_s3_api_speaks_https_only(app, storage):
    plain = http_get(app, f"http://{app_name(storage)}:{S3_PORT}/")
    # Go's TLS server answers plain HTTP with 400 and serves nothing.
    assert plain["status"] == 400, plain
    assert "AccessDenied" not in plain["body"] and "ListAllMyBuckets" not in plain["body"], plain
    # HTTPS, checked against the CA the app host trusts: an anonymous request
    # reaches S3 and is refused.
    secure = http_get(app, STORE["s3_endpoint"] + "/")
    assert secure["status"] == 403 and "AccessDenied" in secure["body"], secure
