"""The SSRF guard: webhooks and upstream calls go to public addresses only, checked when the URL is registered and
on every connection.

Three layers, so that no single bypass is enough:
1. `check_url` parses the URL's host; an IP literal in any notation (`2130706433`, `0177.0.0.1`, `0x7f.1`,
   `127.1`, `[::ffff:127.0.0.1]`) is decided at once — aiohttp never asks a resolver about literals;
2. `GuardedResolver` resolves a hostname through the injected resolver and refuses it when ANY address is
   not public; aiohttp then connects only to the addresses it returned, i.e. the ones just checked, so a
   DNS answer that changes between check and connect cannot slip through (SNI and Host stay the hostname);
3. `socket_factory` checks the address of every socket aiohttp opens, whatever produced it.
An allow-list of networks (`webhooks_allowed_networks`, `upstream_allowed_networks`) lets an operator through to
named networks (test receivers, a local provider simulator); cloud metadata addresses stay refused even then.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp import TCPConnector, ThreadedResolver
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from shared.net.networks import IPAddress, Network, parse_networks, unwrap

MAX_URL_LENGTH = 2000
PASSED_CACHE_SIZE = 10_000

METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254", "192.0.0.192")
)


def _nets(*pairs: tuple[str, str]) -> list[tuple[Network, str]]:
    return [(ipaddress.ip_network(cidr), reason) for cidr, reason in pairs]


# First match wins: the specific ranges come before the wide ones that contain them.
BLOCKED: list[tuple[Network, str]] = _nets(
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "cgnat"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "reserved"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "reserved"),  # IPv4-compatible (deprecated)
    ("64:ff9b::/96", "nat64"),
    ("64:ff9b:1::/48", "nat64"),
    ("100::/64", "reserved"),  # discard-only
    ("2001::/32", "teredo"),
    ("2001:2::/48", "benchmarking"),
    ("2001:db8::/32", "documentation"),
    ("2001::/23", "reserved"),
    ("2002::/16", "6to4"),
    ("3fff::/20", "documentation"),
    ("fc00::/7", "unique-local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)
GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")


class InvalidUrl(ValueError):
    """A webhook or provider URL that must not be used; the message says why (shown to whoever set it)."""


class ForbiddenDestination(OSError):
    """The destination is not a public address. An OSError so that aiohttp's connect path carries it."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(f"destination {host} -> {address} is not allowed ({reason})")
        self.host = host
        self.address = address
        self.reason = reason


def _parse_ipv4_part(text: str) -> int | None:
    if not text:
        return None
    lowered = text.lower()
    try:
        if lowered.startswith("0x"):
            return int(lowered[2:], 16) if len(lowered) > 2 else None
        if len(text) > 1 and text.startswith("0"):
            return int(text[1:], 8)
        return int(text, 10) if text.isdigit() else None
    except ValueError:
        return None


def parse_ipv4_loose(text: str) -> ipaddress.IPv4Address | None:
    """Read an IPv4 address the way inet_aton() does (1 to 4 parts, decimal, octal or hex), or None."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = [_parse_ipv4_part(p) for p in parts]
    if any(v is None for v in values):
        return None
    nums = [v for v in values if v is not None]
    *head, last = nums
    if any(v > 255 for v in head) or last >= 1 << (8 * (5 - len(nums))):
        return None
    value = 0
    for v in head:
        value = (value << 8) | v
    value = (value << (8 * (5 - len(nums)))) | last
    return ipaddress.IPv4Address(value)


def parse_host_ip(host: str) -> IPAddress | None:
    """The address a URL host denotes when it is an IP literal in any notation; None for a hostname."""
    text = host.strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return parse_ipv4_loose(text)


def forbidden_reason(ip: IPAddress, allowed: tuple[Network, ...] = ()) -> str | None:
    """Why `ip` must not be contacted, or None when it may."""
    ip = unwrap(ip)
    if ip in METADATA:
        return "cloud-metadata"
    if any(ip.version == net.version and ip in net for net in allowed):
        return None
    for net, reason in BLOCKED:
        if ip.version == net.version and ip in net:
            return reason
    if isinstance(ip, ipaddress.IPv6Address) and ip not in GLOBAL_UNICAST_V6:
        return "reserved"
    if not ip.is_global:
        return "not-public"
    return None


class AddressGuard:
    """Decides where webhooks and upstream calls may go. `resolver` is injectable (tests control DNS); default:
    getaddrinfo."""

    def __init__(self, allowed_networks: str = "", resolver: AbstractResolver | None = None) -> None:
        self.allowed = parse_networks(allowed_networks)
        self._resolver = resolver
        # URLs that passed `check_url` (a pure function of the URL and the allowed networks): the dispatcher
        # checks every attempt's URL, mostly the same few. Hosts are still resolved and checked per connection.
        self._passed: dict[tuple[str, bool], URL] = {}

    @property
    def inner_resolver(self) -> AbstractResolver:
        if self._resolver is None:
            self._resolver = ThreadedResolver()
        return self._resolver

    def check_ip(self, host: str, ip: IPAddress) -> None:
        reason = forbidden_reason(ip, self.allowed)
        if reason is not None:
            raise ForbiddenDestination(host, str(ip), reason)

    def check_url(self, url: str, *, allow_http: bool) -> URL:
        """Syntax, scheme and (for IP literals) destination of a URL; raises InvalidUrl."""
        passed = self._passed.get((url, allow_http))
        if passed is not None:
            return passed
        parsed = self._check_url(url, allow_http=allow_http)
        if len(self._passed) >= PASSED_CACHE_SIZE:
            self._passed.clear()
        self._passed[(url, allow_http)] = parsed
        return parsed

    def _check_url(self, url: str, *, allow_http: bool) -> URL:
        if len(url) > MAX_URL_LENGTH:
            raise InvalidUrl("url is too long")
        try:
            parsed = URL(url)
        except (ValueError, TypeError) as exc:
            raise InvalidUrl("url is not a valid URL") from exc
        allowed_schemes = ("https", "http") if allow_http else ("https",)
        if parsed.scheme not in allowed_schemes:
            raise InvalidUrl("url must use " + " or ".join(allowed_schemes))
        if not parsed.host or parsed.user is not None or parsed.password is not None:
            raise InvalidUrl("url must have a host and no credentials")
        literal = parse_host_ip(parsed.host)
        if literal is not None:
            self.check_ip(parsed.host, literal)
        return parsed

    async def resolve_checked(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[ResolveResult]:
        """Resolve `host`; refuse when any address is not allowed; return exactly the checked addresses."""
        literal = parse_host_ip(host)
        if literal is not None:
            self.check_ip(host, literal)
            fam = socket.AF_INET if literal.version == 4 else socket.AF_INET6
            return [{"hostname": host, "host": str(literal), "port": port, "family": fam, "proto": 0, "flags": 0}]
        answers = await self.inner_resolver.resolve(host, port, family)
        if not answers:
            raise OSError(f"{host} has no address")
        for answer in answers:
            self.check_ip(host, ipaddress.ip_address(answer["host"].split("%", 1)[0]))
        return answers

    async def check_destination(self, url: str, *, allow_http: bool) -> URL:
        """Registration-time check: the URL, and every address its host resolves to now."""
        try:
            parsed = self.check_url(url, allow_http=allow_http)
            assert parsed.host is not None
            await self.resolve_checked(parsed.host, parsed.port or 0)
        except ForbiddenDestination as exc:
            raise InvalidUrl(f"url points to a non-public address ({exc.reason})") from exc
        except OSError as exc:
            raise InvalidUrl("url host cannot be resolved") from exc
        return parsed

    def socket_factory(self, addr_info: tuple[int, int, int, str, tuple[object, ...]]) -> socket.socket:
        family, type_, proto, _, address = addr_info
        self.check_ip(str(address[0]), ipaddress.ip_address(str(address[0]).split("%", 1)[0]))
        return socket.socket(family=family, type=type_, proto=proto)

    def connector(self, *, limit: int, limit_per_host: int = 0) -> TCPConnector:
        """An aiohttp connector whose every connection passes the guard (no DNS cache: check each time)."""
        return TCPConnector(
            resolver=GuardedResolver(self),
            use_dns_cache=False,
            socket_factory=self.socket_factory,
            limit=limit,
            limit_per_host=limit_per_host,
        )

    async def close(self) -> None:
        if self._resolver is not None:
            await self._resolver.close()


class GuardedResolver(AbstractResolver):
    def __init__(self, guard: AddressGuard) -> None:
        self.guard = guard

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return await self.guard.resolve_checked(host, port, family)

    async def close(self) -> None:
        # The guard owns the inner resolver and closes it.
        return None


def forbidden_cause(exc: BaseException) -> ForbiddenDestination | None:
    """The ForbiddenDestination behind an aiohttp error, if that is what it was."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ForbiddenDestination):
            return seen
        if isinstance(seen, OSError):
            for arg in seen.args:
                if isinstance(arg, ForbiddenDestination):
                    return arg
        nested = getattr(seen, "os_error", None)
        if isinstance(nested, ForbiddenDestination):
            return nested
        seen = seen.__cause__ or seen.__context__
    return None
