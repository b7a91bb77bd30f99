import json

import pytest

from secure_postfix.stack.config import (
    ConfigError,
    HostSpec,
    SaslSpec,
    SiteSpec,
    StackSpec,
    TlsSpec,
    parse_hosts,
    parse_sasl,
    parse_sites,
    parse_stack,
    parse_tls,
    read_inventory,
)

HOSTS_RAW = {
    "mx": {"address": "10.0.0.2", "host_key": "ssh-ed25519 AAAAmx"},
    "edge": {"address": "10.0.0.3", "host_key": "ssh-ed25519 AAAAedge", "port": 2222, "user": "deploy"},
    "auth": {"address": "10.0.0.5", "host_key": "ssh-ed25519 AAAAauth", "use_sudo": True},
}
TLS_FILES = {"cert_file": ".testbed/tls/mx.crt", "key_file": ".testbed/tls/mx.key"}
PREFIX = "secure-postfix:sites.solo"


@pytest.fixture
def hosts():
    return parse_hosts(HOSTS_RAW)


def error_of(fn, *args):
    with pytest.raises(ConfigError) as info:
        fn(*args)
    return str(info.value)


# -- hosts -----------------------------------------------------------------------------


def test_parse_hosts_with_defaults_and_overrides(hosts):
    assert hosts == {
        "mx": HostSpec(name="mx", address="10.0.0.2", host_key="ssh-ed25519 AAAAmx"),
        "edge": HostSpec(name="edge", address="10.0.0.3", host_key="ssh-ed25519 AAAAedge", port=2222, user="deploy"),
        "auth": HostSpec(name="auth", address="10.0.0.5", host_key="ssh-ed25519 AAAAauth", use_sudo=True),
    }
    assert hosts["mx"].port == 22 and hosts["mx"].user == "root"
    assert hosts["mx"].insecure_ignore_host_key is False


def test_parse_hosts_converts_a_text_port():
    assert parse_hosts({"mx": {"address": "mx.example.test", "port": "2222"}})["mx"].port == 2222


def test_host_without_host_key_parses_to_none():
    assert parse_hosts({"lab": {"address": "192.0.2.1", "insecure_ignore_host_key": True}})["lab"] == HostSpec(
        name="lab", address="192.0.2.1", host_key=None, insecure_ignore_host_key=True
    )


@pytest.mark.parametrize("item", ["10.0.0.2", None, ["10.0.0.2"]])
def test_host_that_is_not_an_object_refused(item):
    assert error_of(parse_hosts, {"mx": item}) == "secure-postfix:hosts.mx must be an object with at least 'address'"


@pytest.mark.parametrize("item", [{}, {"address": ""}, {"address": 10}, {"host_key": "ssh-ed25519 AAAA"}])
def test_host_without_address_refused(item):
    assert error_of(parse_hosts, {"mx": item}) == (
        "secure-postfix:hosts.mx.address is required (the host's IP address or DNS name)"
    )


def test_host_error_names_the_given_section():
    assert error_of(parse_hosts, {"mx": {}}, "inventory.hosts").startswith("secure-postfix:inventory.hosts.mx.address")


def test_non_numeric_port_names_the_key():
    with pytest.raises(ConfigError, match=r"secure-postfix:hosts\.mx\.port"):
        parse_hosts({"mx": {"address": "10.0.0.2", "port": "ssh"}})


# -- sites -----------------------------------------------------------------------------


def solo(**changes):
    site = {
        "postfix_host": "mx",
        "dovecot_host": "mx",
        "limits": {"message_size_limit": 10240000},
        "sasl": {"listener": "unix", "auth_mechanisms": "plain login"},
        "tls": dict(TLS_FILES),
    }
    site.update(changes)
    return {k: v for k, v in site.items() if v is not None}


def test_solo_site_parses(hosts):
    assert parse_sites({"solo": solo()}, hosts) == {
        "solo": SiteSpec(
            name="solo",
            postfix_hosts=("mx",),
            dovecot_host="mx",
            public_mx=True,
            limits={"message_size_limit": 10240000},
            directives={},
            sasl=SaslSpec(listener="unix"),
            tls=TlsSpec(cert_file=".testbed/tls/mx.crt", key_file=".testbed/tls/mx.key"),
        )
    }


def test_same_host_defaults_to_the_unix_listener(hosts):
    site = parse_sites({"solo": solo(sasl={})}, hosts)["solo"]
    assert site.sasl == SaslSpec(listener="unix")


def test_split_hosts_default_to_inet(hosts):
    site = parse_sites({"split": solo(postfix_host="edge", dovecot_host="auth", sasl={})}, hosts)["split"]
    assert site.sasl == SaslSpec(listener="inet", listen_port=12345, bind_address=None)


def test_split_hosts_take_port_and_bind_address(hosts):
    sasl = {"listener": "inet", "listen_port": "2525", "bind_address": "10.0.0.5"}
    site = parse_sites({"split": solo(postfix_host="edge", dovecot_host="auth", sasl=sasl)}, hosts)["split"]
    assert site.sasl.listen_port == 2525
    assert site.sasl.bind_address == "10.0.0.5"


def test_unix_listener_across_two_hosts_refused(hosts):
    message = error_of(parse_sites, {"solo": solo(dovecot_host="auth", sasl={"listener": "unix"})}, hosts)
    assert message.startswith(f"{PREFIX}.sasl.listener is unix but Dovecot (auth) and Postfix (mx) are different hosts")
    assert message.endswith("use inet")


def test_inet_listener_on_one_host_is_allowed(hosts):
    site = parse_sites({"solo": solo(sasl={"listener": "inet"})}, hosts)["solo"]
    assert site.sasl.listener == "inet"


def test_unknown_listener_refused(hosts):
    assert error_of(parse_sites, {"solo": solo(sasl={"listener": "tcp"})}, hosts) == (
        f"{PREFIX}.sasl.listener must be unix or inet, got 'tcp'"
    )


def test_site_without_sasl_or_tls(hosts):
    site = parse_sites({"plain": {"postfix_host": "mx", "public_mx": False}}, hosts)["plain"]
    assert site == SiteSpec(name="plain", postfix_hosts=("mx",), public_mx=False)


@pytest.mark.parametrize("postfix_host", [None, "nowhere"])
def test_postfix_host_must_name_a_host(hosts, postfix_host):
    message = error_of(parse_sites, {"solo": solo(postfix_host=postfix_host)}, hosts)
    assert message == (f"{PREFIX}.postfix_host is {postfix_host!r}; it must name one of hosts: ['auth', 'edge', 'mx']")


def test_dovecot_host_must_name_a_host(hosts):
    assert error_of(parse_sites, {"solo": solo(dovecot_host="dovecot")}, hosts) == (
        f"{PREFIX}.dovecot_host is 'dovecot'; it must name one of hosts: ['auth', 'edge', 'mx']"
    )


def test_site_that_is_not_an_object_refused(hosts):
    assert error_of(parse_sites, {"solo": "mx"}, hosts) == f"{PREFIX} must be an object"


@pytest.mark.parametrize("key", ["limits", "directives"])
def test_limits_and_directives_must_be_objects(hosts, key):
    assert error_of(parse_sites, {"solo": solo(**{key: ["message_size_limit"]})}, hosts) == (
        f"{PREFIX}.{key} must be an object of directive: value"
    )


def test_dovecot_host_without_sasl_refused(hosts):
    site = solo()
    del site["sasl"]
    assert error_of(parse_sites, {"solo": site}, hosts) == (
        f"{PREFIX}.dovecot_host is set but {PREFIX}.sasl is missing"
    )


def test_sasl_without_dovecot_host_refused(hosts):
    site = solo()
    del site["dovecot_host"]
    assert error_of(parse_sites, {"solo": site}, hosts) == (
        f"{PREFIX}.sasl needs {PREFIX}.auth_service (a key of secure-postfix:auth_services) or "
        f"{PREFIX}.dovecot_host (the host that runs Dovecot)"
    )


def test_sasl_that_is_not_an_object_refused(hosts):
    assert error_of(parse_sites, {"solo": solo(sasl="unix")}, hosts) == f"{PREFIX}.sasl must be an object"


def test_sasl_without_tls_refused(hosts):
    site = solo()
    del site["tls"]
    message = error_of(parse_sites, {"solo": site}, hosts)
    assert message.startswith(f"{PREFIX}.sasl needs {PREFIX}.tls")
    assert "noplaintext" in message


def test_tls_without_sasl_is_fine(hosts):
    site = parse_sites({"solo": {"postfix_host": "mx", "tls": dict(TLS_FILES)}}, hosts)["solo"]
    assert site.sasl is None
    assert site.tls == TlsSpec(cert_file=".testbed/tls/mx.crt", key_file=".testbed/tls/mx.key")


# -- sasl ------------------------------------------------------------------------------


def test_sasl_defaults_are_the_guides():
    spec = parse_sasl({}, PREFIX, "mx", "mx")
    assert spec == SaslSpec(
        listener="unix",
        listen_port=12345,
        bind_address=None,
        auth_mechanisms="plain login",
        security_options="noanonymous, noplaintext",
        tls_security_options="noanonymous",
    )


def test_sasl_none_without_dovecot_host_is_none():
    assert parse_sasl(None, PREFIX, "mx", None) is None


@pytest.mark.parametrize("mechanisms", ["plain login", "PLAIN, LOGIN", "plain", "login"])
def test_noplaintext_over_tls_with_only_plaintext_mechanisms_refused(mechanisms):
    raw = {"auth_mechanisms": mechanisms, "tls_security_options": "noanonymous, noplaintext"}
    message = error_of(parse_sasl, raw, PREFIX, "mx", "mx")
    assert message.startswith(f"{PREFIX}.sasl: tls_security_options has noplaintext")
    assert f"({mechanisms})" in message


def test_noplaintext_over_tls_with_a_non_plaintext_mechanism_allowed():
    raw = {"auth_mechanisms": "plain login scram-sha-256", "tls_security_options": "noanonymous, noplaintext"}
    assert parse_sasl(raw, PREFIX, "mx", "mx").auth_mechanisms == "plain login scram-sha-256"


def test_noplaintext_outside_tls_with_plaintext_mechanisms_is_the_guides_setup():
    raw = {"auth_mechanisms": "PLAIN LOGIN", "security_options": "noanonymous, noplaintext"}
    spec = parse_sasl(raw, PREFIX, "mx", "mx")
    assert spec.security_options == "noanonymous, noplaintext"
    assert spec.tls_security_options == "noanonymous"


# -- tls -------------------------------------------------------------------------------


def test_tls_none_is_none():
    assert parse_tls(None, PREFIX) is None


def test_tls_that_is_not_an_object_refused():
    assert error_of(parse_tls, "yes", PREFIX) == f"{PREFIX}.tls must be an object"


def test_tls_with_pem_and_secret():
    raw = {"cert_pem": "-----BEGIN CERTIFICATE-----", "key_secret": "mx_tls_key", "protocols": ">=TLSv1.3"}
    assert parse_tls(raw, PREFIX) == TlsSpec(
        cert_pem="-----BEGIN CERTIFICATE-----", key_secret="mx_tls_key", security_level="may", protocols=">=TLSv1.3"
    )


@pytest.mark.parametrize(
    "raw",
    [
        {"key_file": "k.pem"},
        {"cert_file": "c.pem", "cert_pem": "-----BEGIN CERTIFICATE-----", "key_file": "k.pem"},
    ],
)
def test_tls_needs_exactly_one_certificate_source(raw):
    assert error_of(parse_tls, raw, PREFIX).startswith(
        f"{PREFIX}.tls needs exactly one of cert_file (a PEM file), cert_pem, or host_cert_file"
    )


@pytest.mark.parametrize(
    "raw",
    [
        {"cert_file": "c.pem"},
        {"cert_file": "c.pem", "key_file": "k.pem", "key_secret": "mx_tls_key"},
    ],
)
def test_tls_needs_exactly_one_key_source(raw):
    message = error_of(parse_tls, raw, PREFIX)
    assert message.startswith(f"{PREFIX}.tls needs exactly one of key_file (a PEM file) or key_secret")
    assert "pulumi config set --secret" in message


# -- stack and inventory ---------------------------------------------------------------


def test_parse_stack_with_both_topologies():
    sites_raw = {
        "solo": solo(),
        "split": solo(postfix_host="edge", dovecot_host="auth", sasl={"listen_port": 12345}),
    }
    stack = parse_stack(HOSTS_RAW, sites_raw)
    assert isinstance(stack, StackSpec)
    assert sorted(stack.hosts) == ["auth", "edge", "mx"]
    assert stack.sites["solo"].sasl.listener == "unix"
    assert stack.sites["split"].sasl.listener == "inet"
    assert stack.sites["split"].postfix_host == "edge"


def test_parse_stack_reports_host_errors_first():
    assert error_of(parse_stack, {"mx": {}}, {"solo": solo()}).startswith("secure-postfix:hosts.mx.address")


def test_read_inventory(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"hosts": HOSTS_RAW, "networks": {"lan": "10.0.0.0/24"}}))
    assert read_inventory(path) == HOSTS_RAW
    assert parse_hosts(read_inventory(path))["edge"].port == 2222


def test_read_inventory_without_hosts(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("{}")
    assert read_inventory(path) == {}


def test_missing_inventory_names_the_key_and_the_fix(tmp_path):
    path = tmp_path / "missing.json"
    assert error_of(read_inventory, path) == (
        f"secure-postfix:inventory_file {path} does not exist (for the local stack, run `make testbed` first)"
    )


def test_every_refused_host_and_site_is_reported_at_once():
    hosts = {
        "mx": {"address": "192.0.2.25", "insecure_ignore_host_key": "no"},
        "edge": {"address": "192.0.2.26", "port": "ssh"},
        "ok": {"address": "192.0.2.27"},
    }
    with pytest.raises(ConfigError) as refused:
        parse_stack(hosts, {})
    assert [p.split(" ")[0] for p in refused.value.problems] == [
        "secure-postfix:hosts.mx.insecure_ignore_host_key",
        "secure-postfix:hosts.edge.port",
    ]
    sites = {"a": {"postfix_host": "nowhere"}, "b": {"postfix_host": "ok", "limits": [1]}, "c": {"postfix_host": "ok"}}
    with pytest.raises(ConfigError) as refused:
        parse_stack({"ok": {"address": "192.0.2.27"}}, sites)
    assert len(refused.value.problems) == 2, refused.value.problems
    assert refused.value.problems[0].startswith("secure-postfix:sites.a")
    assert refused.value.problems[1].startswith("secure-postfix:sites.b.limits")


def test_relay_restrictions_default_to_a_permanent_refusal_and_false_leaves_the_host_alone():
    hosts = {"mx": {"address": "192.0.2.25"}}
    assert parse_stack(hosts, {"a": {"postfix_host": "mx"}}).sites["a"].relay_restrictions == (
        "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"
    )
    assert (
        parse_stack(hosts, {"a": {"postfix_host": "mx", "relay_restrictions": False}}).sites["a"].relay_restrictions
        is None
    )
    with pytest.raises(ConfigError, match=r"sites\.a\.relay_restrictions: has defer_unauth_destination"):
        parse_stack(
            hosts, {"a": {"postfix_host": "mx", "relay_restrictions": "permit_mynetworks, defer_unauth_destination"}}
        )
