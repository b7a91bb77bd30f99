"""Every boolean of the stack config and of the resources' inputs is a real boolean, never text taken as true."""

import pytest

from secure_postfix import connection as conn
from secure_postfix import dovecot_auth
from secure_postfix.stack.config import ConfigError, parse_hosts, parse_sites
from tests.unit.settings_as_provider import tls_problems

HOSTS_RAW = {"mx": {"address": "10.0.0.2", "host_key": "ssh-ed25519 AAAAmx"}}
# What YAML 1.2 and `pulumi config set --path` hand to the program for someone who meant "false".
NOT_BOOLEANS = ["no", "off", "False", "False ", "FALSE", "0", "yes", "on", 1, 0, None, [], "TRUE"]
CERTS = {"cert_file": "c.pem", "key_file": "k.pem"}





def host_error(key, value):
    with pytest.raises(ConfigError) as info:
        parse_hosts({"mx": {"address": "10.0.0.2", key: value}})
    return str(info.value)


def site_error(site):
    hosts = parse_hosts(HOSTS_RAW)
    with pytest.raises(ConfigError) as info:
        parse_sites({"solo": {"postfix_host": "mx", **site}}, hosts)
    return str(info.value)


@pytest.mark.parametrize("key", ["insecure_ignore_host_key", "use_sudo"])
@pytest.mark.parametrize("value", NOT_BOOLEANS)
def test_host_flag_that_is_not_a_boolean_is_refused_naming_host_and_key(key, value):
    message = host_error(key, value)
    assert f"secure-postfix:hosts.mx.{key} must be true or false" in message
    assert repr(value) in message


@pytest.mark.parametrize("value", NOT_BOOLEANS)
def test_public_mx_that_is_not_a_boolean_is_refused(value):
    assert "secure-postfix:sites.solo.public_mx must be true or false" in site_error({"public_mx": value})


@pytest.mark.parametrize("value", NOT_BOOLEANS)
def test_allow_all_interfaces_that_is_not_a_boolean_is_refused(value):
    site = {"dovecot_host": "mx", "sasl": {"listener": "inet", "allow_all_interfaces": value}, "tls": CERTS}
    assert "secure-postfix:sites.solo.sasl.allow_all_interfaces must be true or false" in site_error(site)


@pytest.mark.parametrize(("value", "expected"), [(True, True), (False, False), ("true", True), ("false", False)])
def test_real_booleans_and_the_exact_words_true_false_are_accepted(value, expected):
    host = parse_hosts({"mx": {"address": "10.0.0.2", "insecure_ignore_host_key": value, "use_sudo": value}})["mx"]
    assert host.insecure_ignore_host_key is expected and host.use_sudo is expected
    site = parse_sites({"solo": {"postfix_host": "mx", "public_mx": value}}, parse_hosts(HOSTS_RAW))["solo"]
    assert site.public_mx is expected


def test_absent_flags_take_their_defaults():
    assert parse_hosts({"mx": {"address": "10.0.0.2"}})["mx"].insecure_ignore_host_key is False
    assert parse_sites({"solo": {"postfix_host": "mx"}}, parse_hosts(HOSTS_RAW))["solo"].public_mx is True


# -- the library's own inputs (connection dicts, resource arguments) ----------------------------


HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
CONNECTION = {"host": "10.0.0.2", "port": 22, "private_key": "KEY", "host_key": None}


@pytest.mark.parametrize("value", ["false", "no", "off", 1, "yes"])
def test_unpinned_host_with_a_text_flag_is_refused(value):
    props = {**conn.connection_props({"host": "10.0.0.2", "insecure_ignore_host_key": value}), "private_key": "K"}
    assert props["insecure_ignore_host_key"] == value  # kept as given, so check can name it
    problems = {p.field: p.message for p in conn.check_connection(props)}
    assert set(problems) == {"insecure_ignore_host_key", "host_key"}
    assert repr(value) in problems["insecure_ignore_host_key"]
    assert conn.ssh_target(props).insecure_ignore_host_key is False


def test_unpinned_host_is_accepted_only_with_a_literal_true():
    assert conn.check_connection({**CONNECTION, "insecure_ignore_host_key": True}) == []
    assert conn.ssh_target({**CONNECTION, "insecure_ignore_host_key": True}).insecure_ignore_host_key is True


@pytest.mark.parametrize("value", ["false", "no", 1])
def test_flag_as_a_resource_argument_is_kept_for_check_too(value):
    props = conn.connection_props({"host": "h"}, insecure_ignore_host_key=value, use_sudo=value)
    assert props["insecure_ignore_host_key"] == value and props["use_sudo"] == value
    assert {"insecure_ignore_host_key", "use_sudo"} <= {p.field for p in conn.check_connection(props)}


def test_text_use_sudo_does_not_turn_sudo_on():
    props = {**CONNECTION, "host_key": HOST_KEY, "use_sudo": "false"}
    assert [p.field for p in conn.check_connection(props)] == ["use_sudo"]
    assert conn.ssh_target(props).use_sudo is False


@pytest.mark.parametrize("value", ["false", "no", 1])
def test_dovecot_all_interfaces_needs_a_real_true(value):
    props = {**CONNECTION, "host_key": HOST_KEY, "listener": "inet", "bind_address": "0.0.0.0"}
    problems = dovecot_auth.check_props({**props, "allow_all_interfaces": value})
    assert [p.field for p in problems] == ["allow_all_interfaces"]
    assert dovecot_auth.check_props({**props, "allow_all_interfaces": True}) == []


@pytest.mark.parametrize("value", ["false", "no", 0])
def test_tls_public_mx_needs_a_real_boolean(value):
    tls = {"cert_pem": "PEM", "security_level": "encrypt", "public_mx": value}
    fields = [p.field for p in tls_problems(tls)]
    assert fields == ["tls.public_mx", "tls.security_level"]  # and encrypt stays refused as on a public MX
    assert tls_problems({**tls, "public_mx": False}) == []
