"""Fleets in stack config: a site over many Postfix hosts, auth services declared once and shared."""

import pytest

from secure_postfix.dovecot_auth import DovecotAuthServiceProvider
from secure_postfix.stack.config import ConfigError, parse_stack

HOSTS = {
    "mx": {"address": "10.0.0.2"},
    "edge": {"address": "10.0.0.3"},
    "auth": {"address": "10.0.0.5"},
    "auth-again": {"address": "10.0.0.5"},
}
TLS = {"cert_file": "c.pem", "key_file": "k.pem"}
CENTRAL = {"central": {"dovecot_host": "auth", "listener": "inet", "listen_port": 12345}}


def stack(sites, services=None):
    return parse_stack(HOSTS, sites, CENTRAL if services is None else services)


def error(sites, services=None) -> str:
    with pytest.raises(ConfigError) as info:
        stack(sites, services)
    return str(info.value)


def fleet(hosts, **more):
    return {"postfix_hosts": hosts, "auth_service": "central", "tls": TLS, **more}


@pytest.mark.parametrize("value", ["mx", ["mx"]])
def test_a_plain_name_and_a_one_element_list_are_one_host(value):
    for key in ("postfix_host", "postfix_hosts"):
        assert stack({"s": {key: value}}, {}).sites["s"].postfix_hosts == ("mx",)


def test_a_site_over_two_hosts_uses_the_declared_service():
    spec = stack({"pair": fleet(["mx", "edge"])})
    site = spec.sites["pair"]
    assert site.postfix_hosts == ("mx", "edge") and site.auth_service == "central"
    assert site.sasl.listener == "inet" and site.sasl.listen_port == 12345
    assert site.sasl.security_options == "noanonymous, noplaintext"
    assert list(spec.auth_services) == ["central"] and spec.auth_services["central"].dovecot_host == "auth"


def test_two_sites_share_one_auth_service():
    spec = stack({"a": fleet(["mx"]), "b": fleet(["edge"])})
    assert {s.auth_service for s in spec.sites.values()} == {"central"}
    assert len(spec.auth_services) == 1


def test_the_listener_defaults_to_inet_for_other_hosts_and_unix_for_dovecots_own():
    services = {"central": {"dovecot_host": "auth"}}
    assert stack({"a": fleet(["mx", "edge"])}, services).auth_services["central"].sasl.listener == "inet"
    assert stack({"a": fleet(["auth"])}, services).auth_services["central"].sasl.listener == "unix"


def test_a_host_in_two_sites_is_refused_naming_both_keys():
    message = error({"a": fleet(["mx", "edge"]), "b": fleet(["edge"])})
    assert "secure-postfix:sites.a.postfix_hosts[1] (edge)" in message
    assert "secure-postfix:sites.b.postfix_host (edge)" in message
    assert "10.0.0.3" in message and "main.cf" in message


def test_a_host_listed_twice_in_one_site_is_refused():
    assert "secure-postfix:sites.a.postfix_hosts[1] (mx) is listed twice" in error({"a": fleet(["mx", "mx"])})


def test_an_unknown_auth_service_is_refused_naming_the_key():
    message = error({"a": {**fleet(["mx"]), "auth_service": "nowhere"}})
    assert message == (
        "secure-postfix:sites.a.auth_service is 'nowhere'; it must name one of secure-postfix:auth_services: "
        "['central']"
    )


def test_a_unix_listener_used_from_another_host_is_refused():
    services = {"central": {"dovecot_host": "auth", "listener": "unix"}}
    message = error({"a": fleet(["auth"]), "b": fleet(["mx"])}, services)
    assert message.startswith("secure-postfix:auth_services.central.listener is unix but secure-postfix:sites.b")
    assert "from mx (10.0.0.2)" in message and "use inet" in message


def test_a_unix_listener_used_from_dovecots_own_machine_under_another_name_is_fine():
    services = {"central": {"dovecot_host": "auth", "listener": "unix"}}
    assert stack({"a": fleet(["auth-again"])}, services).sites["a"].sasl.listener == "unix"


def test_two_services_on_one_machine_are_refused():
    services = {**CENTRAL, "other": {"dovecot_host": "auth-again", "listener": "inet"}}
    message = error({"a": fleet(["mx"])}, services)
    assert "secure-postfix:auth_services.central.dovecot_host (auth)" in message
    assert "secure-postfix:auth_services.other.dovecot_host (auth-again)" in message


def test_an_older_site_owning_the_dovecot_of_a_declared_service_is_refused():
    old = {"postfix_host": "edge", "dovecot_host": "auth", "sasl": {"listener": "inet"}, "tls": TLS}
    message = error({"a": fleet(["mx"]), "old": old})
    assert "secure-postfix:sites.old.dovecot_host (auth)" in message
    assert "secure-postfix:auth_services.central.dovecot_host (auth)" in message


def test_the_older_keys_still_map_onto_a_site_of_its_own():
    old = {"postfix_host": ["mx", "edge"], "dovecot_host": "auth", "sasl": {"listen_port": 2525}, "tls": TLS}
    site = stack({"old": old}, {}).sites["old"]
    assert site.postfix_hosts == ("mx", "edge") and site.dovecot_host == "auth" and site.auth_service is None
    assert site.sasl.listener == "inet" and site.sasl.listen_port == 2525


def test_the_older_unix_listener_across_a_fleet_is_refused():
    old = {"postfix_hosts": ["mx", "edge"], "dovecot_host": "mx", "sasl": {"listener": "unix"}, "tls": TLS}
    assert "Dovecot (mx) and Postfix (edge) are different hosts" in error({"old": old}, {})


@pytest.mark.parametrize("key", ["listener", "listen_port", "auth_mechanisms", "bind_address"])
def test_dovecot_settings_on_a_site_that_uses_a_service_are_refused(key):
    message = error({"a": fleet(["mx"], sasl={key: "x"})})
    assert f"secure-postfix:sites.a.sasl.{key} is set on the auth service" in message
    assert f"secure-postfix:auth_services.central.{key}" in message


def test_a_site_with_a_service_and_a_dovecot_host_is_refused():
    assert "sets both auth_service and dovecot_host" in error({"a": fleet(["mx"], dovecot_host="auth")})


def test_an_unknown_setting_of_a_service_is_refused():
    message = error({"a": fleet(["mx"])}, {"central": {"dovecot_host": "auth", "security_options": "x"}})
    assert message.startswith("secure-postfix:auth_services.central.security_options is not a setting")


def test_a_service_on_an_unknown_host_is_refused():
    message = error({}, {"central": {"dovecot_host": "nowhere"}})
    assert message.startswith("secure-postfix:auth_services.central.dovecot_host is 'nowhere'")


def test_a_service_needs_tls_on_the_site():
    assert "sites.a.sasl needs secure-postfix:sites.a.tls" in error(
        {"a": {"postfix_host": "mx", "auth_service": "central"}}
    )


@pytest.mark.parametrize("port", ["12a", "", [1], 1.5, True, "١٢"])
def test_a_library_callers_bad_port_is_refused_naming_the_host(port):
    props = {"host": "10.0.0.5", "port": 22, "user": "root", "insecure_ignore_host_key": True, "private_key": "k"}
    result = DovecotAuthServiceProvider().check({}, {**props, "listener": "inet", "listen_port": port})
    reasons = [(f.property, f.reason) for f in result.failures]
    assert ("listen_port", f"10.0.0.5: listen_port: must be a whole number (a TCP port), got {port!r}") in reasons


@pytest.mark.parametrize("port", [2525, "2525", 2525.0])
def test_a_port_as_number_text_or_wire_float_is_accepted(port):
    props = {"host": "10.0.0.5", "port": 22, "user": "root", "insecure_ignore_host_key": True, "private_key": "k"}
    result = DovecotAuthServiceProvider().check({}, {**props, "listener": "inet", "listen_port": port})
    assert [f.property for f in result.failures] == []
    assert result.inputs["sasl_path"] == "inet:10.0.0.5:2525"


# -- submission services and where AUTH is offered ---------------------------------------


def test_a_site_with_services_offers_auth_on_submission_only_by_default():
    site = stack({"a": fleet(["mx"], services={"submission": None, "submissions": {}})}).sites["a"]
    assert site.sasl.offer_auth == "submission"
    assert site.services == {
        "submission": {"type": "submission", "options": {}},
        "submissions": {"type": "submissions", "options": {}},
    }


def test_a_site_without_services_keeps_auth_everywhere_as_before():
    assert stack({"a": fleet(["mx"])}).sites["a"].sasl.offer_auth == "everywhere"


def test_auth_everywhere_can_be_chosen_with_services():
    site = fleet(["mx"], services={"submission": {}}, sasl={"offer_auth": "everywhere"})
    assert stack({"a": site}).sites["a"].sasl.offer_auth == "everywhere"


def test_service_limits_become_overrides_and_options_win():
    services = {"submission": {"limits": {"smtpd_client_connection_rate_limit": 10}, "options": {"x_y": "1"}}}
    site = stack({"a": fleet(["mx"], services=services)}).sites["a"]
    assert site.services["submission"]["options"] == {"smtpd_client_connection_rate_limit": "10", "x_y": "1"}


@pytest.mark.parametrize(
    ("site", "words"),
    [
        (fleet(["mx"], sasl={"offer_auth": "submission"}), "sites.a.sasl.offer_auth is submission but"),
        (fleet(["mx"], services={"submission": {}}, sasl={"offer_auth": "port25"}), "offer_auth must be submission or"),
        (fleet(["mx"], services={"smtp": {}}), "secure-postfix:sites.a.services.smtp.type is 'smtp'"),
        (fleet(["mx"], services={"submission": {"port": 2525}}), "sites.a.services.submission.port is not a setting"),
        (
            fleet(["mx"], services={"submission": {"limits": {"message_size_limit": 1}}}),
            "sites.a.services.submission.limits.message_size_limit is not one of",
        ),
        ({"postfix_host": "mx", "tls": TLS, "services": {"submission": {}}}, "sites.a.services needs SMTP AUTH"),
        (fleet(["mx"], sasl={"offer": "x"}), "secure-postfix:sites.a.sasl.offer is not a setting of sasl"),
    ],
)
def test_bad_service_settings_are_refused_naming_the_key(site, words):
    assert words in error({"a": site})
