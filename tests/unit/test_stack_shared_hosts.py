"""Two sites never own the same file on one machine: the overlap is refused naming both sites."""

import pytest

from secure_postfix.stack.config import ConfigError, parse_hosts, parse_sites

HOSTS = parse_hosts(
    {
        "mx": {"address": "10.0.0.2"},
        "edge": {"address": "10.0.0.3"},
        "auth": {"address": "10.0.0.5"},
        "auth-again": {"address": "10.0.0.5"},  # the same machine under a second name
        "auth-other-port": {"address": "10.0.0.5", "port": 2222},
        "MX-upper": {"address": "MX.example.com"},
        "mx-lower": {"address": "mx.example.com"},
    }
)
TLS = {"cert_file": "c.pem", "key_file": "k.pem"}


def sasl_site(postfix, dovecot, port=12345):
    return {"postfix_host": postfix, "dovecot_host": dovecot, "sasl": {"listen_port": port}, "tls": TLS}


def error(sites):
    with pytest.raises(ConfigError) as info:
        parse_sites(sites, HOSTS)
    return str(info.value)


@pytest.mark.parametrize("second", ["auth", "auth-again"])
def test_two_sites_sharing_a_dovecot_host_are_refused_naming_both(second):
    # Even with different ports: each site's resource owns the whole Dovecot file.
    message = error({"one": sasl_site("mx", "auth"), "two": sasl_site("edge", second, port=12346)})
    assert "secure-postfix:sites.one.dovecot_host (auth)" in message
    assert f"secure-postfix:sites.two.dovecot_host ({second})" in message
    assert "10.0.0.5" in message and "99-secure-postfix-auth.conf" in message


@pytest.mark.parametrize(("first", "second"), [("mx", "mx"), ("MX-upper", "mx-lower")])
def test_two_sites_sharing_a_postfix_host_are_refused_naming_both(first, second):
    message = error({"one": {"postfix_host": first}, "two": {"postfix_host": second}})
    assert f"sites.one.postfix_host ({first})" in message and f"sites.two.postfix_host ({second})" in message
    assert "main.cf" in message


def test_different_machines_are_fine():
    sites = parse_sites({"one": sasl_site("mx", "auth"), "two": sasl_site("edge", "auth-other-port")}, HOSTS)
    assert sorted(sites) == ["one", "two"]


def test_one_host_in_two_roles_of_different_sites_is_fine():
    # Postfix of one site and Dovecot of another on the same machine own different files.
    sites = parse_sites({"one": sasl_site("mx", "auth"), "two": {"postfix_host": "auth"}}, HOSTS)
    assert sorted(sites) == ["one", "two"]


def test_one_site_with_both_roles_on_one_host_is_fine():
    assert parse_sites({"solo": sasl_site("mx", "mx")}, HOSTS)["solo"].sasl.listener == "unix"
