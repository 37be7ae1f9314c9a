"""SSRF protection for outgoing webhooks: check a URL, resolve it, refuse internal addresses,
and connect to exactly the address that was checked (so DNS rebinding cannot redirect it)."""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from notifications.errors import PermanentError, RetryableError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]

# Cloud instance metadata services: AWS (IPv4, IPv6, ECS task), Alibaba, Oracle.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {
        ipaddress.IPv4Address("169.254.169.254"),
        ipaddress.IPv6Address("fd00:ec2::254"),
        ipaddress.IPv4Address("169.254.170.2"),
        ipaddress.IPv4Address("100.100.100.200"),
        ipaddress.IPv4Address("192.0.0.192"),
    }
)
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_HOSTNAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$")
_IPV4_PART = re.compile(r"^(0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*)$")


class UnsafeTargetError(PermanentError):
    """A webhook URL that must not be called; ``why`` names the rule it broke."""

    def __init__(self, why: str, message: str) -> None:
        super().__init__("unsafe_target", f"{why}: {message}")
        self.why = why


@dataclass(frozen=True)
class Target:
    """A checked webhook target: connect to ``address``, send ``host`` as SNI and Host."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def parse_ipv4_literal(host: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address written in any form ``inet_aton`` accepts (``2130706433``,
    ``0x7f000001``, ``0177.0.0.1``, ``127.1``), or ``None`` when ``host`` is not one."""
    parts = host.rstrip(".").split(".")
    if not 1 <= len(parts) <= 4 or not all(_IPV4_PART.match(part) for part in parts):
        return None
    values = []
    for part in parts:
        if part[:2].lower() == "0x":
            values.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            values.append(int(part, 8))
        else:
            values.append(int(part))
    *head, last = values
    if any(value > 255 for value in head) or last >= 256 ** (4 - len(head)):
        raise UnsafeTargetError("invalid_host", f"{host!r} is a malformed IPv4 address")
    number = last
    for index, value in enumerate(head):
        number += value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in NAT64 or (ip in IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(ip: IPAddress, allow_loopback: bool = False) -> tuple[str, str] | None:
    """``(why, explanation)`` when ``ip`` must not be called, else ``None``."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            problem = address_problem(embedded, allow_loopback)
            if problem is not None:
                return problem[0], f"{ip} embeds {embedded}, {problem[1]}"
    if ip in METADATA_ADDRESSES:
        return "metadata_address", f"{ip} is a cloud metadata service"
    if ip.is_loopback:
        return None if allow_loopback else ("loopback_address", f"{ip} is a loopback address")
    if ip.is_unspecified:
        return "unspecified_address", f"{ip} is the unspecified address"
    if ip.is_link_local:
        return "link_local_address", f"{ip} is a link-local address"
    if ip.is_multicast:
        return "multicast_address", f"{ip} is a multicast address"
    if ip.is_private:
        return "private_address", f"{ip} is a private address"
    if ip.is_reserved:
        return "reserved_address", f"{ip} is a reserved address"
    if not ip.is_global:
        return "non_public_address", f"{ip} is not a public address"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """All addresses of ``host`` from the system resolver, in its order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0]).split("%", 1)[0]
        if address not in seen:
            seen.append(address)
    return seen


def check_url(
    url: str, *, resolver: Resolver = system_resolver, allow_loopback: bool = False
) -> Target:
    """Check ``url`` and resolve it once; raise ``UnsafeTargetError`` (permanent) when it is
    not a public HTTPS endpoint, ``RetryableError('webhook_dns_failed')`` when it does not
    resolve. Plain http is allowed only to loopback and only with ``allow_loopback``."""
    try:
        parts = urlsplit(url.strip())
        port_text = parts.port
    except ValueError as error:
        raise UnsafeTargetError("invalid_url", f"cannot parse the URL: {error}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise UnsafeTargetError("scheme_not_allowed", f"scheme {scheme!r} is not https")
    if scheme == "http" and not allow_loopback:
        raise UnsafeTargetError("scheme_not_allowed", "only https is allowed")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeTargetError("credentials_in_url", "URLs with user info are refused")
    raw_host = parts.hostname or ""
    if not raw_host:
        raise UnsafeTargetError("invalid_url", "the URL has no host")
    if "%" in raw_host:
        raise UnsafeTargetError("invalid_host", "IPv6 zone ids are refused")
    port = port_text or (443 if scheme == "https" else 80)

    literal: IPAddress | None
    try:
        literal = ipaddress.ip_address(raw_host)
    except ValueError:
        literal = parse_ipv4_literal(raw_host)
    if literal is not None:
        host = str(literal)
        addresses: list[IPAddress] = [literal]
    else:
        try:
            host = raw_host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise UnsafeTargetError("invalid_host", "the host name is not valid IDNA") from None
        if not _HOSTNAME.match(host):
            raise UnsafeTargetError("invalid_host", "the host name has invalid characters")
        bare = host.rstrip(".")
        if (bare in LOOPBACK_NAMES or bare.endswith(".localhost")) and not allow_loopback:
            raise UnsafeTargetError("loopback_address", f"{bare} is a loopback name")
        addresses = _resolve(host, port, resolver)

    for ip in addresses:
        problem = address_problem(ip, allow_loopback)
        if problem is not None:
            raise UnsafeTargetError(*problem)
    if scheme == "http" and not all(ip.is_loopback for ip in addresses):
        raise UnsafeTargetError("scheme_not_allowed", "plain http is allowed only to loopback")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme=scheme, host=host, port=port, path=path, address=str(addresses[0]))


def _resolve(host: str, port: int, resolver: Resolver) -> list[IPAddress]:
    try:
        found = resolver(host, port)
    except OSError as error:
        raise RetryableError("webhook_dns_failed", f"cannot resolve the host: {error}") from None
    addresses: list[IPAddress] = []
    for text in found:
        try:
            addresses.append(ipaddress.ip_address(text.split("%", 1)[0]))
        except ValueError:
            raise UnsafeTargetError("invalid_host", "the resolver returned a bad address") from None
    if not addresses:
        raise RetryableError("webhook_dns_failed", "the host has no address")
    return addresses


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(
        self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


class PinnedHttpTransport:
    """POSTs with the standard library to the checked address only. Redirects are never
    followed (http.client does not follow them); the response body is drained up to a small
    bound and discarded."""

    max_response_bytes = 64 * 1024

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context or ssl.create_default_context()

    def post(
        self, target: Target, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> HttpResponse:
        connection: http.client.HTTPConnection
        if target.scheme == "https":
            connection = _PinnedHTTPSConnection(
                target.host, target.port, target.address, timeout, self._ssl_context
            )
        else:
            connection = _PinnedHTTPConnection(target.host, target.port, target.address, timeout)
        try:
            connection.request("POST", target.path, body=body, headers=dict(headers))
            response = connection.getresponse()
            response.read(self.max_response_bytes)
            return HttpResponse(
                status=response.status,
                headers={key.lower(): value for key, value in response.getheaders()},
            )
        finally:
            connection.close()
