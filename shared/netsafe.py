"""Refuse URLs that point into private networks (SSRF protection).

The scraper, the ingest downloader and the gateway's ``image_url`` all fetch URLs that come
from outside. :func:`check_url` accepts only http(s) URLs whose host resolves exclusively to
public addresses, unless the caller explicitly allows private ones: for exactly named
``host:port`` pairs (:func:`host_port`; the demo shop on ``127.0.0.1:8001``), or for any host (a
source an operator marked as internal). It returns the resolved addresses so that a client can
connect to exactly what was checked.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.errors import InvalidInputError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeURLError(InvalidInputError):
    """The URL is not http(s), or its host is (or resolves to) a non-public address."""

    code = "unsafe_url"


class PrivateAddressError(UnsafeURLError):
    """The host is (or resolves to) a private, loopback or reserved address. Callers that
    can allow such addresses add the setting that does to the message."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(
            f"{host} resolves to {address}, a private, loopback or reserved address; "
            "fetching it is refused"
        )
        self.host = host
        self.address = address


class UnresolvableURLError(InvalidInputError):
    """The URL's host name does not resolve."""

    code = "unresolvable_url"


@dataclass(frozen=True)
class CheckedURL:
    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


_SPECIAL = tuple(
    ipaddress.ip_network(network)
    for network in (
        # IANA IPv4 Special-Purpose Address Registry: the blocks not globally reachable (all of
        # 192.0.0.0/24, whose two anycast /32s serve no images), the deprecated 6to4 relay
        # anycast and multicast. Python 3.11's ``is_global`` misses some (192.0.0.8).
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        # IANA IPv6 Special-Purpose Address Registry (the translation prefixes that embed an
        # IPv4 address are judged by that address, see embedded_ipv4).
        "::/128",
        "::1/128",
        "64:ff9b:1::/48",
        "100::/64",
        "100:0:0:1::/64",
        "2001::/23",
        "2001:db8::/32",
        "3fff::/20",
        "5f00::/16",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped (``::ffff:a.b.c.d``),
    IPv4-compatible (``::a.b.c.d``), NAT64 (``64:ff9b::/96``) or 6to4 (``2002::/16``)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or address in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public_address(address: IPAddress) -> bool:
    """True for globally routable unicast addresses only: outside every special-purpose block,
    and for an IPv6 address that embeds an IPv4 one, that IPv4 address is public too."""
    embedded = embedded_ipv4(address)
    if embedded is not None:
        return is_public_address(embedded)
    if any(address in network for network in _SPECIAL):
        return False
    return address.is_global and not address.is_multicast


def resolve(host: str, port: int) -> tuple[str, ...]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnresolvableURLError(f"host {host!r} does not resolve: {exc}") from exc
    return tuple(dict.fromkeys(str(info[4][0]) for info in infos))


def host_port(text: str) -> str:
    """``host:port`` in the one spelling :func:`check_url` compares (host lower-cased, IPv6 in
    brackets); raises ``ValueError`` when ``text`` is not a host and a port."""
    parts = urlsplit(f"//{text.strip()}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{text!r} is not host:port ({exc})") from exc
    if not parts.hostname or port is None or parts.username is not None or parts.path:
        raise ValueError(f"{text!r} is not host:port (like 127.0.0.1:8001)")
    host = parts.hostname.lower()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_url(
    url: str,
    *,
    allow_private: bool = False,
    allow_hosts: Collection[str] = (),
    resolve_host: bool = True,
) -> CheckedURL:
    """Validate ``url`` for fetching; raise :class:`UnsafeURLError` or
    :class:`UnresolvableURLError` with a message a user can act on. Private addresses are
    allowed with ``allow_private``, or when the URL's ``host:port`` is in ``allow_hosts``
    (spelt as :func:`host_port` spells them; the port is the URL's or its scheme's)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURLError(f"malformed URL {url!r}: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"}:
        raise UnsafeURLError(f"only http and https URLs can be fetched, not {scheme or 'none'!r}")
    host = parts.hostname
    if not host:
        raise UnsafeURLError(f"URL {url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURLError("URLs with credentials are not fetched")
    port = port or (443 if scheme == "https" else 80)
    addresses: tuple[str, ...] = ()
    if resolve_host:
        addresses = resolve(host, port)
    else:
        try:
            addresses = (str(ipaddress.ip_address(host)),)
        except ValueError:
            addresses = ()
    named = host_port(f"[{host}]:{port}" if ":" in host else f"{host}:{port}") in allow_hosts
    if not (allow_private or named):
        for address in addresses:
            if not is_public_address(ipaddress.ip_address(address.split("%", 1)[0])):
                raise PrivateAddressError(host, address)
    return CheckedURL(url=url, scheme=scheme, host=host, port=port, addresses=addresses)
