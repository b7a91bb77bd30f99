"""Where the probes ask Postfix: at inet_interfaces and port 25's own master.cf entry, not always 127.0.0.1:25."""

from __future__ import annotations

import pytest

from secure_postfix.core import host_output
from secure_postfix.core.smtp_endpoint import Endpoint, listen_address, service_endpoint, smtp_endpoint


@pytest.mark.parametrize(
    ("interfaces", "protocols", "address"),
    [
        ("all", "all", "127.0.0.1"),
        ("", "", "127.0.0.1"),
        ("loopback-only", "all", "127.0.0.1"),
        ("all", "ipv6", "::1"),
        ("192.0.2.10", "all", "192.0.2.10"),
        ("192.0.2.10, 127.0.0.1", "ipv4", "127.0.0.1"),
        ("192.0.2.10 localhost", "all", "127.0.0.1"),
        ("[2001:db8::5], 192.0.2.10", "ipv4", "192.0.2.10"),
        ("[2001:db8::5]", "all", "2001:db8::5"),
        ("mx.example.org", "all", "mx.example.org"),
    ],
)
def test_the_probe_goes_where_inet_interfaces_says(interfaces, protocols, address):
    assert listen_address(interfaces, protocols) == address


@pytest.mark.parametrize(
    ("services", "endpoint"),
    [
        ("smtp submission", Endpoint("192.0.2.10", 25)),
        ("submission 192.0.2.20:smtp", Endpoint("192.0.2.20", 25)),
        ("[2001:db8::7]:25", Endpoint("2001:db8::7", 25)),
        ("2525 smtps", Endpoint("192.0.2.10", 25)),  # no port-25 smtpd at all: where it would be
    ],
)
def test_port_25_is_master_cfs_own_entry(services, endpoint):
    assert smtp_endpoint("192.0.2.10", "all", services) == endpoint


def test_a_service_name_without_an_address_listens_at_inet_interfaces():
    assert service_endpoint("587", "192.0.2.10") == Endpoint("192.0.2.10", 587)
    assert service_endpoint("127.0.0.1:submission", "192.0.2.10") == Endpoint("127.0.0.1", 587)
    assert service_endpoint("no-such-port", "192.0.2.10") is None
    assert str(Endpoint("2001:db8::7", 25)) == "[2001:db8::7]:25"


FACTS_HEAD = "/etc/postfix\n3.7.11\n/var/log/mail.log\n/var/spool/postfix\n-\n"


def test_the_facts_carry_where_postfix_listens():
    out = FACTS_HEAD + "10.0.0.5\nipv4\nsmtp submission\n--- defaults\nbiff\n--- main.cf\nbiff = no\n"
    facts = host_output.parse_postfix_facts(out)
    assert facts.listen_address == "10.0.0.5" and facts.smtp == Endpoint("10.0.0.5", 25)
    # What an older facts script printed (no such lines): loopback, as before.
    old = host_output.parse_postfix_facts(FACTS_HEAD + "--- defaults\nbiff\n--- main.cf\nbiff = no\n")
    assert old.listen_address == "127.0.0.1" and old.smtp == Endpoint("127.0.0.1", 25)
