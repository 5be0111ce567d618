"""Which network addresses a URL fetch may connect to, and how host names become addresses.

A URL given by a caller must not reach the service's own network (SSRF): loopback, private
ranges, link-local (cloud metadata at 169.254.169.254), multicast, reserved and unspecified
addresses are refused, in IPv4 and IPv6, including IPv6 forms that carry an IPv4 address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from mmrag.errors import ForbiddenSource, SourceUnreachable

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

# host, port -> the addresses to try; injectable so tests need no DNS.
Resolver = Callable[[str, int], list[IPAddress]]

_NAT64 = IPv6Network("64:ff9b::/96")


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The host's addresses from the operating system's resolver, in its order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise SourceUnreachable(f"cannot resolve host {host!r}") from error
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        # IPv6 scope ids ("fe80::1%eth0") are dropped: the address check is what matters.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def unwrap(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (``::ffff:10.0.0.1``) is the IPv4 address it maps."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_public(address: IPAddress) -> bool:
    """Globally routable unicast, with no private IPv4 address tunnelled inside."""
    address = unwrap(address)
    if isinstance(address, IPv6Address):
        for embedded in _embedded_ipv4(address):
            if not is_public(embedded):
                return False
    return address.is_global and not (
        address.is_multicast  # is_global is True for much of 224.0.0.0/4 and ff00::/8
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
    )


def _embedded_ipv4(address: IPv6Address) -> list[IPv4Address]:
    found: list[IPv4Address] = []
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _NAT64:
        found.append(IPv4Address(int(address) & 0xFFFFFFFF))
    return found


@dataclass(frozen=True)
class AddressPolicy:
    """Public unicast addresses only, unless a network is explicitly allowed.

    ``allow`` lists exceptions, for an internal image server or for tests that serve
    images from 127.0.0.1: ``AddressPolicy.allowing("127.0.0.1/32")``.
    """

    allow: tuple[IPNetwork, ...] = ()

    @classmethod
    def allowing(cls, *networks: str) -> AddressPolicy:
        return cls(tuple(ipaddress.ip_network(network) for network in networks))

    def permits(self, address: IPAddress) -> bool:
        plain = unwrap(address)
        if any(plain in network for network in self.allow):
            return True
        return is_public(plain)

    def check(self, host: str, addresses: list[IPAddress]) -> list[IPAddress]:
        """The addresses to try, in order; refuses a host if any of them is refused
        (a name that mixes public and private addresses is an attack, not an accident)."""
        if not addresses:
            raise SourceUnreachable(f"host {host!r} has no address")
        for address in addresses:
            if not self.permits(address):
                raise ForbiddenSource(
                    f"host {host!r} resolves to {address}, a private, loopback, link-local "
                    "or reserved address"
                )
        return addresses
