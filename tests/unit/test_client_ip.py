"""The client's address (peer, X-Forwarded-For from trusted proxies only) and the CIDR lists
of keys and of the config (gateway/edge/client_ip.py)."""

from __future__ import annotations

from ipaddress import ip_address, ip_network
from pathlib import Path

import pytest

from gateway.edge.client_ip import (
    BadNetwork,
    client_address,
    is_within,
    parse_address,
    parse_networks,
    parse_trusted_proxies,
)
from gateway.settings import ConfigError, parse_settings

PROXIES = (ip_network("10.0.0.0/8"), ip_network("fd00::/8"))


@pytest.mark.parametrize(("peer", "forwarded", "client"), [
    ("203.0.113.7", [], "203.0.113.7"),  # no proxy in between
    ("203.0.113.7", ["198.51.100.1"], "203.0.113.7"),  # an untrusted peer's header: ignored
    ("10.0.0.2", [], "10.0.0.2"),  # a trusted peer that names no one
    ("10.0.0.2", ["198.51.100.1"], "198.51.100.1"),
    ("10.0.0.2", ["1.2.3.4, 198.51.100.1"], "198.51.100.1"),  # the client wrote 1.2.3.4
    ("10.0.0.2", ["198.51.100.1, 10.1.1.1"], "198.51.100.1"),  # two proxies of ours
    ("10.0.0.2", ["1.2.3.4", "198.51.100.1, 10.9.9.9"], "198.51.100.1"),  # headers in order
    ("10.0.0.2", ["10.3.3.3, 10.1.1.1"], "10.3.3.3"),  # all ours: the left-most
    ("10.0.0.2", ["2001:db8::5"], "2001:db8::5"),
    ("fd00::1", ["[2001:db8::5]:443"], "2001:db8::5"),
    ("fd00::1", ["198.51.100.1:4711"], "198.51.100.1"),
    ("::ffff:10.0.0.2", ["198.51.100.1"], "198.51.100.1"),  # an IPv4 peer on a v6 socket
    ("10.0.0.2", ["1.2.3.4, junk"], None),  # a hop no proxy of ours wrote: unknown
    (None, ["198.51.100.1"], None),
    ("", [], None),
])  # fmt: skip
def test_the_client_is_the_right_most_untrusted_address(
    peer: str | None, forwarded: list[str], client: str | None
) -> None:
    found = client_address(peer, forwarded, PROXIES)
    assert found == (ip_address(client) if client else None)


def test_without_trusted_proxies_the_header_is_never_read() -> None:
    assert client_address("10.0.0.2", ["198.51.100.1"], ()) == ip_address("10.0.0.2")


def test_addresses_and_networks_of_both_families() -> None:
    networks = parse_networks(["10.0.0.0/8", "2001:db8::/32", "192.0.2.7", "10.0.0.0/8"], "x")
    assert [str(n) for n in networks] == ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"]
    inside = ("10.255.0.1", "2001:db8:1::1", "192.0.2.7", "::ffff:10.1.2.3")
    outside = ("11.0.0.1", "2001:db9::1", "192.0.2.8", "::1")
    for text in inside + outside:
        address = parse_address(text)
        assert address is not None and is_within(address, networks) == (text in inside), text


@pytest.mark.parametrize(("value", "where", "problem"), [
    ("10.0.0.0/8", "allowed_ips", "list"),
    (["10.0.0.0/33"], "allowed_ips[0]", "not an IPv4 or IPv6"),
    (["10.0.0.0/8", "10.0.0.1/8"], "allowed_ips[1]", "host bits set; the network is 10.0.0.0/8"),
    (["2001:db8::1/32"], "allowed_ips[0]", "host bits set"),
    ([""], "allowed_ips[0]", "CIDR"),
    ([7], "allowed_ips[0]", "CIDR"),
    (["example.com"], "allowed_ips[0]", "not an IPv4 or IPv6"),
    (["10.0.0.0/8"] * 101, "allowed_ips", "at most 100"),
])  # fmt: skip
def test_a_bad_list_names_its_entry(value: object, where: str, problem: str) -> None:
    with pytest.raises(BadNetwork) as caught:
        parse_networks(value, "allowed_ips")
    assert caught.value.where == where and problem in caught.value.problem, caught.value


def test_trusted_proxies_in_the_config(tmp_path: Path) -> None:
    def fail(field: str, problem: str) -> Exception:
        return ValueError(f"{field}: {problem}")

    assert parse_trusted_proxies(None, fail) == ()
    assert parse_trusted_proxies(["10.0.0.0/8"], fail) == (ip_network("10.0.0.0/8"),)
    with pytest.raises(ValueError, match=r"^trusted_proxies\[1\]: 'nope' is not"):
        parse_trusted_proxies(["10.0.0.0/8", "nope"], fail)
    def settings(data: dict[str, object]) -> object:
        return parse_settings(data, source="g.yaml", base_dir=tmp_path, env={}).trusted_proxies

    assert settings({"trusted_proxies": ["fd00::/8"]}) == (ip_network("fd00::/8"),)
    assert settings({}) == ()
    with pytest.raises(ConfigError, match=r"^g\.yaml: trusted_proxies: must be a list"):
        settings({"trusted_proxies": "10.0.0.0/8"})
