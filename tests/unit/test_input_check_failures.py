"""Check failures name the input property, except where Pulumi would print a secret or a certificate with it."""

from secure_postfix import connection as conn
from secure_postfix import dovecot_auth as da
from secure_postfix import postfix_config as pc
from tests.tls_files import make_pair

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
CONNECTION = {"host": "10.0.0.2", "port": 22, "user": "root", "host_key": HOST_KEY, "private_key": "K"}


def failures(provider, props):
    return {f.reason.split(": ")[1]: f.property for f in provider.check({}, props).failures}


def test_connection_problems_name_their_property():
    props = {**CONNECTION, "port": 0, "host_key": "ssh-ed25519 AAAA...", "use_sudo": "no"}
    assert failures(pc.PostfixConfigProvider(), props) == {
        "port": "port",
        "host_key": "host_key",
        "use_sudo": "use_sudo",
    }


def test_secret_and_map_properties_are_never_named():
    cert, _ = make_pair("mx.example.com")
    _, other_key = make_pair("mx.example.com")
    props = {
        **CONNECTION,
        "private_key": "",
        "limits": {"message_size_limit": "-5"},
        "directives": {"smtpd_recipient_limit": "1; reboot"},
        "tls": {"cert_pem": cert, "security_level": "bogus"},
        "tls_key_pem": other_key,
    }
    named = failures(pc.PostfixConfigProvider(), props)
    assert set(named) >= {"private_key", "message_size_limit", "smtpd_recipient_limit", "tls.security_level"}
    assert "tls_key_pem" in named  # the key does not match the certificate
    # Pulumi would print each of these properties' values, the private key and certificate included.
    assert set(named.values()) == {""}


def test_dovecot_settings_are_named():
    props = {**CONNECTION, "listener": "inet", "bind_address": "fe80::1%x", "auth_mechanisms": "bogus"}
    assert failures(da.DovecotAuthServiceProvider(), props) == {
        "bind_address": "bind_address",
        "auth_mechanisms": "auth_mechanisms",
    }


def test_failure_property_takes_the_top_level_name():
    assert conn.failure_property("host_key") == "host_key"
    assert conn.failure_property("limits.queue_minfree") == ""
    assert conn.failure_property("tls_key_pem") == ""
    assert conn.failure_property("socket_path", {"socket_path"}) == "socket_path"
