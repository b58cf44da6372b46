"""Where mail for a domain goes when there is no smarthost: its MX hosts, then their addresses (dnspython).

RFC 5321 §5.1: the MX records in preference order, equal preferences in random order (so the load spreads
over hosts the domain ranks alike); a domain without MX records is its own mail host (the "implicit MX",
its A/AAAA records). RFC 7505: an MX of "." (null MX) says the domain takes no mail at all, a permanent
failure (``556 5.1.10``) with no connection attempted. A domain that does not exist (NXDOMAIN) fails for good
too; a DNS server that times out or fails (SERVFAIL) is a temporary failure the queue retries.

The lookups return SMTP-style replies in :class:`NoRoute` so the sender records them per recipient as it does
a remote server's answer. Ordering and the nameserver setting are plain functions, tested without DNS.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import AsyncIterator, Iterable

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.resolver

__all__ = ["NoRoute", "candidates", "make_resolver", "order_mx", "parse_nameserver"]


class NoRoute(Exception):
    """No mail host to try for a domain: ``reply`` is what the recipients' delivery status says."""

    def __init__(self, reply: str, permanent: bool) -> None:
        super().__init__(reply)
        self.reply = reply
        self.permanent = permanent


def parse_nameserver(text: str) -> tuple[str, int]:
    """``"IP"``, ``"IP:PORT"``, ``"[IPv6]:PORT"`` or a bare IPv6 address -> (address, port). ValueError else."""
    text = text.strip()
    host, port = text, 53
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"not a nameserver: {text!r}")
        if rest:
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    ipaddress.ip_address(host)  # a name here would need a resolver to find the resolver
    if not 0 < port < 65536:
        raise ValueError(f"nameserver port out of range: {text!r}")
    return host, port


def make_resolver(nameservers: list[str], timeout: float) -> dns.asyncresolver.Resolver:
    """The system's resolver (/etc/resolv.conf), or one asking only ``nameservers``; ``timeout`` bounds each
    whole lookup (all servers and retries), so a dead DNS costs an attempt that long and no more."""
    if nameservers:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(*parse_nameserver(n)) for n in nameservers]
    else:
        resolver = dns.asyncresolver.Resolver()  # NoResolverConfiguration when the system has none
    resolver.lifetime = timeout
    resolver.timeout = min(timeout, 2.0)  # per server try: a dropped UDP answer is asked again soon
    return resolver


def order_mx(records: Iterable[tuple[int, str]], rng: random.Random | None = None) -> list[str]:
    """Host names by preference, lowest first, each group of equal preference shuffled; duplicates once."""
    rng = rng or random.Random()
    groups: dict[int, list[str]] = {}
    for preference, host in records:
        groups.setdefault(preference, []).append(host)
    out: list[str] = []
    for preference in sorted(groups):
        group = list(dict.fromkeys(groups[preference]))
        rng.shuffle(group)
        out += [h for h in group if h not in out]
    return out


def _literal(domain: str) -> str | None:
    """``[192.0.2.1]`` / ``[IPv6:2001:db8::1]`` (an address literal, RFC 5321 §4.1.3) -> the address."""
    if not (domain.startswith("[") and domain.endswith("]")):
        return None
    inner = domain[1:-1]
    if inner[:5].lower() == "ipv6:":
        inner = inner[5:]
    try:
        return str(ipaddress.ip_address(inner))
    except ValueError:
        raise NoRoute(f"550 5.1.2 Bad address literal {domain}", permanent=True) from None


def _temporary(domain: str, exc: dns.exception.DNSException) -> NoRoute:
    if isinstance(exc, dns.exception.Timeout):
        return NoRoute(f"451 4.4.3 DNS lookup for {domain} timed out", permanent=False)
    if isinstance(exc, dns.resolver.NoNameservers):
        return NoRoute(f"451 4.4.3 DNS servers failed to answer for {domain} (SERVFAIL)", permanent=False)
    return NoRoute(f"451 4.4.3 DNS lookup for {domain} failed: {exc}", permanent=False)


async def mail_hosts(resolver: dns.asyncresolver.Resolver, domain: str) -> tuple[list[str], bool]:
    """(hosts to try in order, implicit): the MX hosts, or ``[domain]`` itself when it has no MX records."""
    try:
        name = dns.name.from_text(domain)  # absolute: no search list appended to a mail domain
    except dns.exception.DNSException:
        raise NoRoute(f"550 5.1.2 Bad domain name {domain}", permanent=True) from None
    try:
        answer = await resolver.resolve(name, "MX")
    except dns.resolver.NXDOMAIN:
        raise NoRoute(f"550 5.1.2 Domain {domain} does not exist", permanent=True) from None
    except dns.resolver.NoAnswer:
        return [domain], True
    except dns.exception.DNSException as exc:
        raise _temporary(domain, exc) from None
    records = [(r.preference, r.exchange) for r in answer]
    real = [(p, x.to_text(omit_final_dot=True)) for p, x in records if x != dns.name.root]
    if not real:  # RFC 7505: "." alone (any other record beside it is a mistake, ignored then)
        raise NoRoute(f"556 5.1.10 Domain {domain} accepts no mail (null MX)", permanent=True)
    return order_mx(real), False


async def addresses(resolver: dns.asyncresolver.Resolver, host: str) -> list[str]:
    """IPv4 then IPv6 addresses of ``host`` (IPv4 first: a sender without IPv6 routes fails fast on it, while
    one without IPv4 is rare). [] when it has none; NoRoute (temporary) when DNS failed for both."""
    out: list[str] = []
    failure: NoRoute | None = None
    try:
        name = dns.name.from_text(host)
    except dns.exception.DNSException:
        return []
    for rdtype in ("A", "AAAA"):
        try:
            answer = await resolver.resolve(name, rdtype)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except dns.exception.DNSException as exc:
            failure = _temporary(host, exc)
            continue
        out += [r.address for r in answer]
    if not out and failure is not None:
        raise failure
    return out


async def candidates(resolver: dns.asyncresolver.Resolver, domain: str) -> AsyncIterator[tuple[str, str]]:
    """(host name, address) pairs to connect to, best first, looked up lazily: a later MX host is only
    resolved when every address before it failed. NoRoute when there is nothing to try at all."""
    literal = _literal(domain)
    if literal is not None:
        yield domain, literal
        return
    hosts, implicit = await mail_hosts(resolver, domain)
    found = False
    failure: NoRoute | None = None
    for host in hosts:
        try:
            found_here = await addresses(resolver, host)
        except NoRoute as exc:  # this host's lookup failed: the next MX may still answer
            failure = exc
            continue
        for address in found_here:
            found = True
            yield host, address
    if found:
        return
    if failure is not None:
        raise failure
    if implicit:  # RFC 5321 §5.1: no MX and no address either: no mail host at all
        raise NoRoute(f"550 5.1.2 Domain {domain} has no mail server (no MX, A or AAAA record)", permanent=True)
    raise NoRoute(f"451 4.4.4 No address for any mail server of {domain}", permanent=False)
