"""What a ban on an address covers: the address itself for IPv4, the /64 network for IPv6 (one subscriber
line usually gets a whole /64, so a single IPv6 address is trivially changed)."""

from __future__ import annotations

import ipaddress


def ban_scope(address: str) -> str:
    """The ban scope of a client address; an address that does not parse is its own scope."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
