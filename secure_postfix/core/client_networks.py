"""How much of the Internet a Postfix network list covers (pure).

A list such as smtpd_client_event_limit_exceptions is judged by the addresses it covers, not by how
it is spelled: `0.0.0.0/1, 128.0.0.0/1` exempts every IPv4 client just as `0.0.0.0/0` does. What
cannot be judged from the text (a lookup table, a file, a host or domain name, a negation) is
reported as such, with the entry.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Space no client on the Internet comes from: exempting it exempts nobody outside.
_NOT_PUBLIC = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/3",
        "::/128",
        "::1/128",
        "::ffff:0:0/96",
        "64:ff9b:1::/48",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)
# Wider than this much public space is no site's own trusted network.
MAX_PUBLIC = {4: 2**24, 6: 2**96}  # a /8 of IPv4, a /32 of IPv6


class NotJudgeable(ValueError):
    """An entry whose coverage the text does not tell."""


@dataclass(frozen=True)
class Coverage:
    networks: tuple[Network, ...]

    def public_addresses(self, version: int) -> int:
        total = 0
        for net in self.networks:
            if net.version != version:
                continue
            inside = sum(
                min(net.num_addresses, p.num_addresses) for p in _NOT_PUBLIC if p.version == version and net.overlaps(p)
            )
            total += net.num_addresses - inside
        return total

    def too_wide(self) -> list[str]:
        """Why the list covers more than a trusted network could, one reason per address family."""
        reasons = []
        for version, name in ((4, "IPv4"), (6, "IPv6")):
            public = self.public_addresses(version)
            if public >= MAX_PUBLIC[version]:
                share = public / (2**32 if version == 4 else 2**128)
                reasons.append(
                    f"covers {share:.0%} of public {name} space"
                    if share >= 0.01
                    else f"covers {public:,} public {name} addresses"
                )
        return reasons


def _network(entry: str) -> Network:
    text = entry
    if text.startswith("["):  # [2001:db8::]/32 or [::1]
        address, _, rest = text[1:].partition("]")
        text = address + rest
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise NotJudgeable(f"{entry!r} is not an address or network") from None


def coverage(text: str) -> Coverage:
    """The networks of an expanded list; raises NotJudgeable for entries the text does not pin down."""
    networks = []
    for entry in (e for e in re.split(r"[\s,]+", text.strip()) if e):
        if entry.startswith("!"):
            raise NotJudgeable(f"{entry!r} negates an entry; the result depends on the order")
        if entry.startswith("/"):
            raise NotJudgeable(f"{entry!r} is a file on the host")
        if re.match(r"^[a-z][a-z0-9_]*:", entry) and not entry.startswith("["):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise NotJudgeable(f"{entry!r} is a lookup table: its contents are on the host") from None
        if re.search(r"[A-Za-z]", entry) and ":" not in entry:
            raise NotJudgeable(f"{entry!r} is a host or domain name: DNS decides whom it covers")
        networks.append(_network(entry))
    return Coverage(
        tuple(ipaddress.collapse_addresses([n for n in networks if n.version == 4]))
        + tuple(ipaddress.collapse_addresses([n for n in networks if n.version == 6]))
    )
