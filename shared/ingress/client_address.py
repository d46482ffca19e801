"""The caller's IP address: the TCP peer, or what our own proxies say in X-Forwarded-For.

Each proxy appends the address it received the connection from to the header (or adds a header line of its
own; several lines are one list, in order). Everything left of the hops our proxies wrote came from the client
and proves nothing, so the header is read from the right: the first address that is not one of our trusted
proxies is the client. Without trusted proxies, or from a peer that is not one, the header is ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import web

from shared.net.networks import IPAddress, in_any, parse_ip, parse_networks


class ClientAddress:
    def __init__(self, trusted_proxies: str) -> None:
        self.trusted = parse_networks(trusted_proxies)

    def of(self, request: web.Request) -> str:
        peer_text = request.remote or ""
        peer = parse_ip(peer_text)
        if peer is None:
            return peer_text
        if not self.trusted or not in_any(peer, self.trusted):
            return str(peer)
        return str(self.from_hops(request.headers.getall("X-Forwarded-For", ()), peer))

    def from_hops(self, header_lines: Iterable[str], peer: IPAddress) -> IPAddress:
        """The right-most hop that is not a trusted proxy; the last trusted one when nothing usable is left."""
        hops = [hop.strip() for line in header_lines for hop in line.split(",") if hop.strip()]
        for hop in reversed(hops):
            ip = parse_ip(hop)
            if ip is None:
                # Not an address: written by whoever sent it, never by our proxies. Stop trusting here.
                return peer
            if not in_any(ip, self.trusted):
                return ip
            peer = ip
        return peer


def rate_limit_bucket(client_ip: str, ipv6_prefix: int) -> str:
    """What the ip rate-limit layer counts: the IPv4 address, or the IPv6 network of `ipv6_prefix` bits around the
    address (one subscriber usually holds a whole /64 and can rotate through it freely)."""
    ip = parse_ip(client_ip)
    if ip is None or ip.version == 4:
        return client_ip
    return str(ipaddress.IPv6Network((int(ip), ipv6_prefix), strict=False))
