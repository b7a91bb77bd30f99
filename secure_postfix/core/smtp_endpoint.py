"""Where Postfix listens, so that the probes ask it there (no I/O).

Postfix's inet services listen on `inet_interfaces` (all, loopback-only, or a list of addresses or
host names) for the protocols of `inet_protocols`, unless a service's master.cf name carries an
address of its own (`192.0.2.1:smtp`). A host hardened to listen on its public address only has
nothing on 127.0.0.1:25: a probe there finds a "dead" Postfix before every change and after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LOOPBACK_V4, LOOPBACK_V6 = "127.0.0.1", "::1"
SMTP_PORT = 25
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]", "loopback-only"}
_PORT_NAMES = {"smtp": 25, "submission": 587, "submissions": 465, "smtps": 465}


@dataclass(frozen=True)
class Endpoint:
    address: str
    port: int

    def __str__(self) -> str:
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"


LOOPBACK_SMTP = Endpoint(LOOPBACK_V4, SMTP_PORT)


def listen_address(inet_interfaces: str, inet_protocols: str = "all") -> str:
    """The address a probe from the host itself reaches Postfix's inet services at (without one of their own).

    Loopback whenever Postfix listens there; else the first address it is given (a host name is resolved by
    the host when the probe connects).
    """
    wanted = [w.strip("[]") if ":" in w else w for w in _words(inet_interfaces)]
    ipv4, ipv6 = _enabled(inet_protocols, "ipv4"), _enabled(inet_protocols, "ipv6")
    if not wanted or "all" in wanted or any(w in _LOOPBACK_NAMES for w in wanted):
        return LOOPBACK_V4 if ipv4 else LOOPBACK_V6
    # An address of a protocol Postfix does not use is one it does not listen on.
    usable = [w for w in wanted if (ipv6 if ":" in w else ipv4)] or wanted
    return usable[0]


def service_endpoint(name: str, default_address: str) -> Endpoint | None:
    """A master.cf inet service name (`smtp`, `2525`, `192.0.2.1:submission`, `[::1]:25`) as an endpoint."""
    host, _, port_text = name.rpartition(":")
    port = int(port_text) if port_text.isascii() and port_text.isdigit() else _PORT_NAMES.get(port_text)
    if port is None:
        return None
    address = host.strip("[]") if host else default_address
    return Endpoint(default_address if address in ("", "*") else address, port)


def smtp_endpoint(inet_interfaces: str, inet_protocols: str, smtpd_services: str) -> Endpoint:
    """Where port 25's smtpd answers: the inet smtpd service on port 25 (`smtpd_services`: the names of
    master.cf's inet smtpd entries), at its own address or at `listen_address`."""
    default = listen_address(inet_interfaces, inet_protocols)
    for name in smtpd_services.split():
        endpoint = service_endpoint(name, default)
        if endpoint is not None and endpoint.port == SMTP_PORT:
            return endpoint
    return Endpoint(default, SMTP_PORT)


def _words(value: str) -> list[str]:
    return [w for w in re.split(r"[\s,]+", value.strip().lower()) if w]


def _enabled(inet_protocols: str, protocol: str) -> bool:
    words = _words(inet_protocols)
    return not words or "all" in words or protocol in words
