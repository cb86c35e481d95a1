"""Whose address a connection has: the TCP peer, or, when that peer is a trusted reverse proxy, the client
address the proxy forwarded (`X-Forwarded-For`, else `X-Real-IP`). Pure functions, no I/O.

    trusted = parse_trusted("127.0.0.1,10.0.0.0/8")        # --trust-proxy; ValueError with a sentence
    found = client_address("127.0.0.1", request.headers, trusted)
    found.address   # "203.0.113.7": what per-address caps, bans, throttles and logs use
    found.problem   # "" or why the forwarded value was not believed (the caller logs it)

Headers from any other peer are ignored: anyone can send them, so believing them would let a client pick
the address its caps and bans apply to.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Protocol

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
TrustedProxies = tuple[IPNetwork, ...]

FORWARDED_FOR = "X-Forwarded-For"
REAL_IP = "X-Real-IP"


class Headers(Protocol):
    """What we need of a header map (websockets' `Headers` has it): every value of a repeatable header."""

    def get_all(self, key: str) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class ClientAddress:
    address: str
    problem: str = ""  # set when a trusted proxy sent a forwarded value we could not read


def parse_trusted(text: str) -> TrustedProxies:
    """`--trust-proxy ADDR[,ADDR...]`: addresses or CIDR networks, comma-separated (ValueError: why not)."""
    networks: list[IPNetwork] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            raise ValueError(f"{text!r} has an empty entry; separate addresses with commas.")
        try:
            networks.append(ipaddress.ip_network(item, strict=True))
        except ValueError:
            try:
                loose = ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an IP address or network (e.g. 127.0.0.1 or 10.0.0.0/8)."
                ) from None
            raise ValueError(f"{item} has host bits set; did you mean {loose}?") from None
    return tuple(networks)


def client_address(peer: str, headers: Headers, trusted: TrustedProxies) -> ClientAddress:
    """The address to account a connection to (see the module docstring)."""
    if not trusted or not _is_trusted(_parse_ip(peer), trusted):
        return ClientAddress(peer)
    forwarded = [item.strip() for value in headers.get_all(FORWARDED_FOR) for item in value.split(",")]
    if forwarded:
        return _from_forwarded_for(peer, forwarded, trusted)
    real = headers.get_all(REAL_IP)
    if not real:
        return ClientAddress(peer)
    ip = _parse_ip(real[-1].strip()) if len(real) == 1 else None
    if ip is None:
        return ClientAddress(peer, f"unreadable {REAL_IP} {_shown(real)} from trusted proxy {peer}")
    return ClientAddress(str(ip))


def _from_forwarded_for(peer: str, forwarded: list[str], trusted: TrustedProxies) -> ClientAddress:
    # Each proxy appends the address it received from, so the right-most entry no trusted proxy added
    # is the client; entries left of it were written by the client itself and prove nothing.
    ip: IPAddress | None = None
    for item in reversed(forwarded):
        ip = _parse_ip(item)
        if ip is None:
            problem = f"unreadable {FORWARDED_FOR} {_shown(forwarded)} from trusted proxy {peer}"
            return ClientAddress(peer, problem)
        if not _is_trusted(ip, trusted):
            break
    return ClientAddress(str(ip))  # all trusted: the left-most (the first proxy's own client)


def _parse_ip(text: str) -> IPAddress | None:
    """A bare address, `[v6]`, `[v6]:port` or `v4:port` (some proxies add the port); None if none of those."""
    host = text
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (text[end + 1 :] and not _is_port(text[end + 1 :])):
            return None
        host = text[1:end]
    elif text.count(":") == 1:
        host, port = text.split(":")
        if not _is_port(":" + port):
            return None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # a dual-stack socket's ::ffff:a.b.c.d is a.b.c.d
    return ip


def _is_port(text: str) -> bool:
    return text.startswith(":") and text[1:].isdecimal() and 0 < int(text[1:]) < 65536


def _is_trusted(ip: IPAddress | None, trusted: TrustedProxies) -> bool:
    return ip is not None and any(ip.version == net.version and ip in net for net in trusted)


def _shown(values: list[str]) -> str:
    text = ", ".join(values)
    return repr(text if len(text) <= 100 else text[:100] + "…")
