"""IP addresses: which ones are on the public internet (a URL from outside may lead there and
nowhere else), and which ones count as one client for a rate limit."""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: NAT64 (RFC 6052): the last 32 bits are an IPv4 address that a gateway connects to for us.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
#: One IPv6 client: a home or phone gets a whole /64 and picks any address in it at will.
CLIENT_PREFIX = 64


def parse(address: str | IPAddress) -> IPAddress | None:
    """ADDRESS as an IP address (an IPv6 zone such as %eth0 dropped), or None if it is none."""
    if not isinstance(address, str):
        return address
    try:
        return ipaddress.ip_address(address.strip("[]").partition("%")[0])
    except ValueError:
        return None


def is_public(address: str | IPAddress) -> bool:
    """True for a unicast address on the public internet: never loopback, private (RFC 1918,
    fc00::/7), link-local (169.254/16 with the cloud metadata services, fe80::/10), CGNAT,
    documentation, multicast, reserved or unspecified, nor an IPv6 form that carries such an
    IPv4 address (mapped, 6to4, NAT64)."""
    ip = parse(address)
    if ip is None or not ip.is_global or ip.is_multicast:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_site_local:
            return False
        embedded = ip.ipv4_mapped or ip.sixtofour or (
            ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in NAT64 else None)
        if embedded is not None:
            return is_public(embedded)
    return True


def is_loopback(address: str | IPAddress) -> bool:
    """True for 127.0.0.0/8 and ::1 (and ::ffff:127.x)."""
    ip = parse(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip is not None and ip.is_loopback


def client_network(address: str | None) -> str:
    """The client a request counts against: its IPv4 address, or its IPv6 /64 (anyone who
    holds one address of a /64 can use them all, so a limit per address would not hold)."""
    ip = parse(address or "")
    if ip is None:
        return address or "-"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, CLIENT_PREFIX), strict=False))
    return str(ip)
