"""Filters host_firewall_names and host_firewall_rules: a role's ports, each open to its clients."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: host_firewall_rules
short_description: The nftables rules of the ports a role opens, each open to its clients only
description:
  - >-
    Each port is given as {port, what, sources}: sources are addresses or networks
    (C(10.0.0.5), C(10.0.0.0/24), C(::/0)), or host names. An inventory host's name
    stands for its ansible_host when it has one; other names are resolved on the
    managed host at deploy time (the role looks them up with ansible.builtin.getent,
    database ahosts, and passes the results here).
  - >-
    Returns one rule per port: {port, what, any (open to everyone: both 0.0.0.0/0 and
    ::/0), ipv4, ipv6 (the addresses and networks let in, collapsed and sorted;
    empty when any), sources (as given, for the comment)}.
    A name that did not resolve, a port out of range or an empty "what" raises an
    error that names the port and the source. An empty sources list is valid: the
    port is closed to every other host (loopback is always let in).
  - A port 0 stands for a listener the role does not open (e.g. metrics switched off): no rule.
  - host_firewall_names returns the names the role must look up (no addresses), sorted.
options:
  _input:
    description: The ports, each {port, what, sources}.
    type: list
    elements: dict
    required: true
  hostvars:
    description: The play's hostvars (an inventory host's ansible_host replaces its name).
    type: dict
    required: true
  lookups:
    description: The registered results of the getent lookups (host_firewall_rules only).
    type: list
    elements: dict
"""

_ANYWHERE = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


def _network(source: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(source, strict=False)
    except ValueError:
        return None


def _checked(ports: object) -> list[dict]:
    """The ports that are open (port 0: none), each checked."""
    if not isinstance(ports, list):
        raise AnsibleFilterError(
            f"host firewall: the ports must be a list, got {type(ports).__name__}"
        )
    opened = []
    for entry in ports:
        if not isinstance(entry, Mapping):
            raise AnsibleFilterError(f"host firewall: each port must be a dict, got {entry!r}")
        port, what, sources = entry.get("port"), entry.get("what"), entry.get("sources")
        # As a template gives it: "9390".
        if isinstance(port, str) and port.strip().isdigit():
            port = int(port)
        if port == 0 and not isinstance(port, bool):
            continue
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise AnsibleFilterError(
                f"host firewall: port must be a number from 1 to 65535, got {port!r} ({what})"
            )
        if not isinstance(what, str) or not what.strip():
            raise AnsibleFilterError(
                f"host firewall: port {port} must say what it serves (what), got {what!r}"
            )
        if not isinstance(sources, list) or not all(
            isinstance(s, str) and s.strip() for s in sources
        ):
            raise AnsibleFilterError(
                f"host firewall: the sources of port {port} ({what}) must be a list of addresses,"
                f" networks or host names, got {sources!r}"
            )
        opened.append(dict(entry, port=port))
    return opened


def _target(source: str, hostvars: Mapping) -> str:
    """What a source stands for: an inventory host's ansible_host, else itself."""
    source = source.strip()
    if source in hostvars:
        address = hostvars[source].get("ansible_host")
        if isinstance(address, str) and address.strip():
            return address.strip()
    return source


def host_firewall_names(ports: list, hostvars: Mapping) -> list[str]:
    """The host names among the sources, to look up on the managed host."""
    names = {
        _target(source, hostvars)
        for entry in _checked(ports)
        for source in entry["sources"]
        if _network(_target(source, hostvars)) is None
    }
    return sorted(names)


def _resolved(lookups: list | None) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for result in lookups or []:
        name = result.get("item")
        answer = (result.get("ansible_facts") or {}).get("getent_ahosts") or {}
        # A name getent did not find comes back as {name: None}: addresses only.
        found[name] = sorted(key for key in answer if _network(key) is not None)
    return found


def host_firewall_rules(ports: list, hostvars: Mapping, lookups: list | None = None) -> list[dict]:
    """One rule per port: the addresses and networks let in, by family."""
    resolved = _resolved(lookups)
    rules = []
    for entry in _checked(ports):
        networks = []
        for source in entry["sources"]:
            target = _target(source, hostvars)
            network = _network(target)
            if network is not None:
                networks.append(network)
                continue
            addresses = resolved.get(target) or []
            if not addresses:
                raise AnsibleFilterError(
                    f"host firewall: port {entry['port']} ({entry['what']}) lets in {source!r}, but"
                    f" {target!r} does not resolve on this host (getent ahosts {target}): give its"
                    " address (ansible_host, or an address or network instead of the name)"
                )
            networks.extend(ipaddress.ip_network(address) for address in addresses)
        collapsed = {
            family: [
                str(n)
                for n in ipaddress.collapse_addresses(n for n in networks if n.version == family)
            ]
            for family in (4, 6)
        }
        everyone = all(str(anywhere) in collapsed[anywhere.version] for anywhere in _ANYWHERE)
        rules.append(
            {
                "port": entry["port"],
                "what": entry["what"].strip(),
                "any": everyone,
                "ipv4": [] if everyone else collapsed[4],
                "ipv6": [] if everyone else collapsed[6],
                "sources": [source.strip() for source in entry["sources"]],
            }
        )
    return rules


class FilterModule:
    def filters(self) -> dict:
        return {
            "host_firewall_names": host_firewall_names,
            "host_firewall_rules": host_firewall_rules,
        }
