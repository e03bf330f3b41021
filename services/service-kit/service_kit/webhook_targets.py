"""Which target URLs a subscription may name.

A webhook makes this service send requests wherever a client asks, from inside the deployment; without
these checks a subscription could reach the instance metadata service (169.254.169.254), the local
stack's emulators or anything else on the private network. A URL is refused for its form, for a
literal address in it, and for every address its host name resolves to.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``socket.getaddrinfo``'s signature, replaced in tests so that no test depends on real DNS.
GetAddrInfo = Callable[..., Sequence[tuple[Any, ...]]]

ALLOWED_SCHEMES = ("http", "https")
#: IPv6 prefix of NAT64 (RFC 6052): a gateway turns 64:ff9b::a9fe:a9fe into 169.254.169.254.
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
#: What a refusal ends with: the rule it applies (checkpoint imports say theirs).
WEBHOOK_RULE = "webhooks are only delivered to public addresses"


class RefusedTarget(ValueError):
    """The URL may not be a webhook target; the message says why, in words a client can act on."""


class HostNotResolved(Exception):
    """The host name resolves to nothing now: refused when subscribing, retried when delivering."""


def check_target(
    url: str,
    *,
    allow_loopback: bool = False,
    getaddrinfo: GetAddrInfo = socket.getaddrinfo,
    rule: str = WEBHOOK_RULE,
) -> list[IPAddress]:
    """The addresses ``url``'s host resolves to, all of them acceptable; else ``RefusedTarget``.

    ``allow_loopback`` lets the local stack deliver to a receiver on the same machine; it allows
    loopback addresses only (127.0.0.0/8, ::1, ::ffff:127.x), never the rest of the private ranges nor
    IPv6 forms that only carry 127.x to somewhere else (NAT64, 6to4, Teredo).
    """
    host, port = _host_and_port(url)
    return check_host(host, port, allow_loopback=allow_loopback, getaddrinfo=getaddrinfo, rule=rule)


def check_host(
    host: str,
    port: int,
    *,
    allow_loopback: bool = False,
    getaddrinfo: GetAddrInfo = socket.getaddrinfo,
    rule: str = WEBHOOK_RULE,
) -> list[IPAddress]:
    """The addresses ``host`` stands for, all of them acceptable; else ``RefusedTarget``."""
    literal = _literal_address(host)
    if literal is not None:
        _check_address(literal, allow_loopback, f"the address {host}", rule)
        return [literal]
    addresses = _resolve(host, port, getaddrinfo)
    for address in addresses:
        _check_address(address, allow_loopback, f"{host} resolves to {address}, which", rule)
    return addresses


def _host_and_port(url: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise RefusedTarget(f"not a valid URL: {error}") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise RefusedTarget(f"only http and https URLs are accepted, not {scheme or 'a URL without a scheme'}")
    # Credentials in a URL end up in logs and in every copy of the subscription; secrets belong elsewhere.
    if parts.username is not None or parts.password is not None:
        raise RefusedTarget("the URL may not contain a user name or password")
    if not parts.hostname:
        raise RefusedTarget("the URL has no host")
    return parts.hostname, port or (443 if scheme == "https" else 80)


def _literal_address(host: str) -> IPAddress | None:
    """The address ``host`` spells, also in the old forms (``2130706433``, ``0x7f000001``, ``127.1``).

    ``ipaddress`` reads only the dotted form, but resolvers and HTTP clients accept the others as the
    same address, so they must be checked as that address, not as a name.
    """
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _resolve(host: str, port: int, getaddrinfo: GetAddrInfo) -> list[IPAddress]:
    try:
        infos = getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise HostNotResolved(f"{host} does not resolve: {error}") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    if not addresses:
        raise HostNotResolved(f"{host} resolves to no address")
    return addresses


def _check_address(address: IPAddress, allow_loopback: bool, subject: str, rule: str) -> None:
    problem = _why_refused(address, allow_loopback)
    if problem:
        raise RefusedTarget(f"{subject} is {problem}; {rule}")


def _why_refused(address: IPAddress, allow_loopback: bool) -> str | None:
    embedded = _embedded_ipv4(address)
    if embedded is None:
        # Loopback here is 127.0.0.0/8 or ::1 only: IPv6 forms that merely contain 127.x (IPv4-compatible
        # ::127.0.0.1, SIIT ::ffff:0:127.0.0.1, local-use NAT64 64:ff9b:1::/48) are reserved, so refused.
        return _why_not_public(address, allow_loopback)
    form, ipv4 = embedded
    # Only the mapped form (::ffff:127.0.0.1) is this host's own loopback, through its IPv4 socket. NAT64,
    # 6to4 and Teredo go out to a gateway or relay, which reaches the 127.x on its side: never allowed.
    problem = _why_not_public(ipv4, allow_loopback and form == "IPv4-mapped")
    if problem:
        return f"{problem} ({form} for {ipv4})" if form != "IPv4-mapped" else problem
    if form == "Teredo":
        # A tunnel through a third party's relay, long obsolete: refused whatever it carries.
        return _why_not_public(address, allow_loopback=False)
    return None


def _embedded_ipv4(address: IPAddress) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64, Teredo), which is where it really goes."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return "IPv4-mapped", address.ipv4_mapped
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    if address in NAT64_PREFIX:
        return "NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.teredo is not None:
        return "Teredo", address.teredo[1]  # the client's address; [0] is the Teredo server's
    return None


def _why_not_public(address: IPAddress, allow_loopback: bool) -> str | None:
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return None if allow_loopback else "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    # Before is_private, which also covers reserved ranges such as 240.0.0.0/4, for the clearer word.
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    # What remains but is not globally reachable, such as carrier-grade NAT space (100.64.0.0/10).
    if not address.is_global:
        return "not a globally reachable address"
    return None
