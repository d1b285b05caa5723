"""The host_firewall filters: which names to look up, and the rules of each port."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_plugin import PLUGINS, load

firewall = load(PLUGINS / "filter" / "host_firewall.py")

HOSTVARS = {
    "monitor1": {"ansible_host": "10.0.0.9"},
    "monitor2": {},
    "app1": {"ansible_host": "  "},
}


def lookups(**answers: list[str]) -> list[dict]:
    """As the role's getent loop registers them (an unknown name: no facts)."""
    return [
        {"item": name, "ansible_facts": {"getent_ahosts": {a: ["STREAM", name] for a in addresses}}}
        if addresses
        else {"item": name, "ansible_facts": {}}
        for name, addresses in answers.items()
    ]


def test_names_are_looked_up_and_addresses_are_not() -> None:
    ports = [
        {
            "port": 9390,
            "what": "metrics",
            "sources": ["monitor1", "monitor2", "10.1.0.0/16", "app1"],
        },
        {"port": 8080, "what": "the app", "sources": ["0.0.0.0/0", "::/0", "scraper.example"]},
    ]
    # monitor1 stands for its ansible_host; a blank one is no address.
    assert firewall.host_firewall_names(ports, HOSTVARS) == ["app1", "monitor2", "scraper.example"]


def test_each_port_lets_in_its_sources_by_family() -> None:
    ports = [{"port": 9390, "what": "metrics", "sources": ["monitor1", "monitor2", "fd00::/64"]}]
    rules = firewall.host_firewall_rules(
        ports, HOSTVARS, lookups(monitor2=["172.18.0.4", "fd00::4"])
    )
    assert rules == [
        {
            "port": 9390,
            "what": "metrics",
            "any": False,
            "ipv4": ["10.0.0.9/32", "172.18.0.4/32"],
            # fd00::4 is inside fd00::/64: collapsed into it.
            "ipv6": ["fd00::/64"],
            "sources": ["monitor1", "monitor2", "fd00::/64"],
        }
    ]


def test_everyone_is_both_families_wildcards() -> None:
    rules = firewall.host_firewall_rules(
        [
            {"port": "8080", "what": "the app", "sources": ["0.0.0.0/0", "::/0"]},
            {"port": 8081, "what": "v4 only", "sources": ["0.0.0.0/0"]},
        ],
        {},
    )
    assert (rules[0]["port"], rules[0]["any"], rules[0]["ipv4"], rules[0]["ipv6"]) == (
        8080,
        True,
        [],
        [],
    )
    assert (rules[1]["any"], rules[1]["ipv4"], rules[1]["ipv6"]) == (False, ["0.0.0.0/0"], [])


def test_no_sources_closes_the_port_and_port_zero_is_no_port() -> None:
    rules = firewall.host_firewall_rules(
        [
            {"port": 18333, "what": "gRPC", "sources": []},
            {"port": 0, "what": "metrics off", "sources": ["x"]},
        ],
        {},
    )
    assert rules == [
        {"port": 18333, "what": "gRPC", "any": False, "ipv4": [], "ipv6": [], "sources": []}
    ]
    assert firewall.host_firewall_names([{"port": 0, "what": "off", "sources": ["x"]}], {}) == []


@pytest.mark.parametrize(
    "answer",
    [
        lookups(monitor2=[]),
        # What getent registers for a key it did not find (fail_key: false).
        [{"item": "monitor2", "ansible_facts": {"getent_ahosts": {"monitor2": None}}}],
    ],
    ids=["no-facts", "name-as-key"],
)
def test_a_name_that_does_not_resolve_fails_naming_port_and_source(answer: list) -> None:
    ports = [{"port": 9390, "what": "Litestream's metrics", "sources": ["monitor2"]}]
    with pytest.raises(
        AnsibleFilterError, match=r"port 9390 \(Litestream's metrics\) lets in 'monitor2'"
    ):
        firewall.host_firewall_rules(ports, HOSTVARS, answer)


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"port": 70000, "what": "x", "sources": []}, "port must be a number from 1 to 65535"),
        ({"port": True, "what": "x", "sources": []}, "port must be a number from 1 to 65535"),
        ({"port": 80, "what": " ", "sources": []}, "must say what it serves"),
        ({"port": 80, "what": "web", "sources": "0.0.0.0/0"}, "must be a list of addresses"),
        ({"port": 80, "what": "web", "sources": [""]}, "must be a list of addresses"),
    ],
)
def test_bad_ports_are_refused(entry: dict, says: str) -> None:
    with pytest.raises(AnsibleFilterError, match=says):
        firewall.host_firewall_rules([entry], {})
