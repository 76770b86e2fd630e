"""Where a request comes from, and whether a key may be used from there (pure).

The client's address is the TCP peer's, unless the peer is one of the configured
``trusted_proxies``: then it is the right-most address of ``X-Forwarded-For`` that is not a
trusted proxy. Each proxy appends the address it saw to the right, so everything to the left
of the first untrusted hop may have been written by the client itself and is never believed;
an untrusted peer's ``X-Forwarded-For`` is ignored altogether.

A key's ``allowed_ips`` are compiled into networks once, when the key is read (and cached with
it), so the check on each request is an address parse and a few integer comparisons.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
MOST_NETWORKS = 100  # per allow-list: enough for any office, small enough to scan per request


class BadNetwork(ValueError):
    """A CIDR that cannot be used: ``where`` names it (``allowed_ips[2]``), ``problem`` says
    why."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where, self.problem = where, problem


def parse_network(text: object, where: str) -> Network:
    """One CIDR (``10.0.0.0/8``, ``2001:db8::/32``) or bare address (a /32 or /128). Host bits
    must be zero: ``10.0.0.1/8`` is refused rather than silently widened."""
    if not isinstance(text, str) or not 0 < len(text) <= 64:
        raise BadNetwork(where, "must be a CIDR such as 10.0.0.0/8 or 2001:db8::/32")
    try:
        return ip_network(text.strip())
    except ValueError as exc:
        if "host bits set" not in str(exc):
            raise BadNetwork(where, f"{text!r} is not an IPv4 or IPv6 network (CIDR)") from None
    wide = ip_network(text.strip(), strict=False)
    raise BadNetwork(where, f"{text!r} has host bits set; the network is {wide}")


def parse_networks(values: object, name: str) -> tuple[Network, ...]:
    """The list of CIDRs called ``name`` (at most ``MOST_NETWORKS``), duplicates dropped, in the
    order given."""
    if not isinstance(values, list) or len(values) > MOST_NETWORKS:
        raise BadNetwork(name, f"must be a list of at most {MOST_NETWORKS} CIDRs")
    networks: list[Network] = []
    for i, value in enumerate(values):
        network = parse_network(value, f"{name}[{i}]")
        if network not in networks:
            networks.append(network)
    return tuple(networks)


def parse_trusted_proxies(
    value: object, fail: Callable[[str, str], Exception]
) -> tuple[Network, ...]:
    """The config's ``trusted_proxies`` (null or absent: none); ``fail(field, problem)`` makes
    the configuration's error."""
    if value is None:
        return ()
    try:
        return parse_networks(value, "trusted_proxies")
    except BadNetwork as exc:
        raise fail(exc.where, exc.problem) from None


def parse_address(text: str | None) -> Address | None:
    """An address as a peer or an ``X-Forwarded-For`` hop gives it (``[v6]:port`` and
    ``v4:port`` too); an IPv4-mapped IPv6 address is its IPv4 address. None: unreadable."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("["):  # [2001:db8::1]:443
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # 203.0.113.7:4711
        text = text.partition(":")[0]
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_within(address: Address, networks: Iterable[Network]) -> bool:
    return any(address in network for network in networks)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]
) -> Address | None:
    """The client's address (None when it cannot be known): the peer's, or, when the peer is
    a trusted proxy, the right-most ``X-Forwarded-For`` hop that is not (the left-most hop
    when every one is). ``forwarded_for`` is every ``X-Forwarded-For`` header, in order."""
    address = parse_address(peer)
    if address is None or not trusted or not is_within(address, trusted):
        return address
    hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            return None  # a hop no proxy of ours wrote: whoever is behind it is unknown
        if not is_within(address, trusted):
            return address
    return address
