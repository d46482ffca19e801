"""IP addresses and networks as the settings and headers give them: comma-separated CIDRs, one parser."""

from __future__ import annotations

import ipaddress
from typing import TypeAlias

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """`"10.0.0.0/8, 2001:db8::/32"` -> networks (host bits allowed); ValueError for anything else."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


def unwrap(ip: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, a dual-stack socket's view of IPv4) as the IPv4 it is."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_ip(text: str) -> IPAddress | None:
    """A plain IP address (no zone, no notation tricks), unwrapped; None when `text` is not one."""
    try:
        return unwrap(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def in_any(ip: IPAddress, networks: tuple[Network, ...]) -> bool:
    return any(ip.version == net.version and ip in net for net in networks)
