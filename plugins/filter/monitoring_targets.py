"""Filter monitoring_litestream_targets: every Litestream metrics listener of the app hosts."""

from __future__ import annotations

from collections.abc import Mapping

DOCUMENTATION = r"""
name: monitoring_litestream_targets
short_description: The Litestream metrics listeners Prometheus scrapes, one per database
description:
  - >-
    For each app host: its first database's Litestream on O(port) (labels C(host)), and
    each of its other databases (its C(litestream_databases)) with a C(metrics_addr),
    on that address's port (labels C(host) and C(database), the database's name). A host
    is reached at its ansible_host, else its inventory name.
  - >-
    A listener on loopback (C(127.0.0.1:PORT), C(localhost:PORT), C([::1]:PORT)) answers
    on its own host only: scraped at loopback when the monitoring host is that host,
    left out otherwise (expose it, C(:PORT), and let the monitoring hosts through the
    database's C(metrics_clients)).
  - Returns a list of {address, labels}.
options:
  _input:
    description: The app hosts (inventory names).
    type: list
    elements: str
    required: true
  hostvars:
    description: The play's hostvars.
    type: dict
    required: true
  port:
    description: The port of each host's first database's Litestream metrics.
    type: int
    required: true
  monitor:
    description: The monitoring host's inventory name (this play's host).
    type: str
    required: true
"""

LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")


def _address(host: str, port: int | str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def monitoring_litestream_targets(
    hosts: list, hostvars: Mapping, port: int, monitor: str
) -> list[dict]:
    targets = []
    for name in hosts or []:
        # Not .get(): HostVars raises on a name it does not hold.
        own = hostvars[name] if name in hostvars else {}  # noqa: SIM401
        reach = str(own.get("ansible_host") or "").strip() or name
        targets.append({"address": _address(reach, port), "labels": {"host": name}})
        for db in own.get("litestream_databases") or []:
            addr = str((db or {}).get("metrics_addr") or "")
            if not addr:
                continue
            bind, _, db_port = addr.rpartition(":")
            if bind in LOOPBACK:
                if name != monitor:
                    continue  # not reachable from the monitoring host
                where = "127.0.0.1"
            else:
                where = reach
            labels = {"host": name, "database": str(db.get("name", ""))}
            targets.append({"address": _address(where, db_port), "labels": labels})
    return targets


class FilterModule:
    def filters(self) -> dict:
        return {"monitoring_litestream_targets": monitoring_litestream_targets}
