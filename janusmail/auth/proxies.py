"""Which client an HTTP request comes from: the TCP peer, unless that peer is a configured reverse proxy.

``X-Forwarded-For`` and ``Forwarded`` (RFC 7239) are written by whoever sends the request, so they are believed
only when the TCP peer is in ``[http] trusted_proxies`` (IP addresses or CIDR networks; default: none). Then the
hop list is walked from the right (the entry our proxy appended) leftwards past further trusted proxies; the
first untrusted address is the client. Everything left of it was written by the client and is ignored, so a
client cannot pick its own address to dodge the failed-login throttle. A hop that is not an address
(``unknown``, an obfuscated ``_token``, garbage) ends the walk at the nearest trusted proxy: such clients then
share that proxy's throttle bucket rather than inventing one.

Only ONE header is read, the one the proxy writes (``[http] forwarded_header``: ``x-forwarded-for``, the default,
or ``forwarded``). Why not both, or "``Forwarded`` wins": common proxies (nginx ``$proxy_add_x_forwarded_for``,
HAProxy ``option forwardfor``) append to ``X-Forwarded-For`` and pass a ``Forwarded`` header the client sent
through untouched, so reading the other header would let the client name its own address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Parse ``trusted_proxies`` entries; ``ValueError`` names the first bad one."""
    if isinstance(values, str):
        raise ValueError("trusted_proxies must be a list of IP addresses or networks")
    out: list[Network] = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"trusted_proxies: {value!r} is not an IP address or network") from exc
    return tuple(out)


def parse_address(text: str) -> str | None:
    """An address from a forwarding header hop (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``"[::1]"``)."""
    text = text.strip().strip('"').strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return str(addr)


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts, current, quoted, escaped = [], [], False, False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            current.append(ch)
            escaped = True
        elif ch == '"':
            current.append(ch)
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def forwarded_hops(values: Sequence[str]) -> list[str | None]:
    """The ``for=`` of every RFC 7239 element, in order (``None`` for an element without one)."""
    hops: list[str | None] = []
    for element in _split_outside_quotes(",".join(values), ","):
        if not element.strip():
            continue
        found: str | None = None
        for pair in _split_outside_quotes(element, ";"):
            name, sep, value = pair.partition("=")
            if sep and name.strip().lower() == "for":
                found = value.strip()
        hops.append(found)
    return hops


#: The forwarding headers ``[http] forwarded_header`` may name.
HEADERS = ("x-forwarded-for", "forwarded")


def check_header(name: object) -> str:
    """The ``forwarded_header`` setting, lower-cased; ``ValueError`` unless it is one of :data:`HEADERS`."""
    value = name.strip().lower() if isinstance(name, str) else name
    if value not in HEADERS:
        raise ValueError(f"forwarded_header must be one of {', '.join(HEADERS)}, not {name!r}")
    return value  # type: ignore[return-value]


def x_forwarded_hops(values: Sequence[str]) -> list[str | None]:
    hops: list[str | None] = [hop.strip() for hop in ",".join(values).split(",") if hop.strip()]
    return hops


class TrustedProxies:
    """The configured proxies and the one header they write; the client address of a request given its peer and
    forwarding headers."""

    def __init__(self, networks: Iterable[str] = (), *, header: str = "x-forwarded-for") -> None:
        self.networks = parse_networks(networks)
        self.header = check_header(header)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, ip: str | None) -> bool:
        addr = parse_address(ip) if ip else None
        if addr is None:
            return False
        a = ipaddress.ip_address(addr)
        return any(a.version == n.version and a in n for n in self.networks)

    def client_ip(
        self, peer: str | None, *, forwarded: Sequence[str] = (), x_forwarded_for: Sequence[str] = ()
    ) -> str:
        """The address to account the request to (the peer itself when it is not a trusted proxy). Only the
        configured :attr:`header` is read; the other one is the client's own writing and is ignored."""
        if not peer:
            return "?"
        if not self.networks or not self.trusts(peer):
            return peer
        hops = forwarded_hops(forwarded) if self.header == "forwarded" else x_forwarded_hops(x_forwarded_for)
        current = parse_address(peer) or peer
        for hop in reversed(hops):
            addr = parse_address(hop) if hop else None
            if addr is None:
                return current
            if not self.trusts(addr):
                return addr
            current = addr
        return current
