import pytest

from secure_postfix.core import dovecot_conf as dc
from secure_postfix.core import postfix_features as features
from secure_postfix.core.postfix_rules import Problem

HEADER = (
    "# Managed by secure-postfix (DovecotAuthService): Dovecot SASL for Postfix.\n"
    "# Changes here are undone by the next `pulumi up`; edit the stack config instead.\n"
)


# -- render ----------------------------------------------------------------------------


def test_render_unix_listener_exactly():
    assert dc.render(dc.Listener("unix"), "plain login") == HEADER + (
        "auth_mechanisms = plain login\n"
        "service auth {\n"
        "  unix_listener /var/spool/postfix/private/auth {\n"
        "    mode = 0660\n"
        "    user = postfix\n"
        "    group = postfix\n"
        "  }\n"
        "}\n"
    )


def test_render_inet_listener_exactly():
    listener = dc.Listener("inet", address="10.0.0.5", port=12345)
    assert dc.render(listener, "plain login") == HEADER + (
        "auth_mechanisms = plain login\n"
        "service auth {\n"
        "  inet_listener postfix_sasl {\n"
        "    address = 10.0.0.5\n"
        "    port = 12345\n"
        "  }\n"
        "}\n"
    )


def test_render_custom_unix_listener_and_three_digit_mode():
    listener = dc.Listener("unix", path="/var/spool/postfix/private/dovecot", mode="600", user="mail", group="mail")
    text = dc.render(listener, "plain")
    assert "  unix_listener /var/spool/postfix/private/dovecot {\n    mode = 0600\n" in text
    assert "    user = mail\n    group = mail\n" in text


def test_render_normalises_mechanisms():
    text = dc.render(dc.Listener("unix"), "  PLAIN,\tLogin  ")
    assert "\nauth_mechanisms = plain login\n" in text


def test_render_inet_ipv6_address_is_not_bracketed():
    text = dc.render(dc.Listener("inet", address="fd00::5", port=2525), "plain")
    assert "    address = fd00::5\n    port = 2525\n" in text


# -- sasl_path -------------------------------------------------------------------------


def test_sasl_path_for_the_default_socket():
    assert dc.sasl_path(dc.Listener("unix")) == "private/auth"


def test_sasl_path_relative_to_a_custom_queue_directory():
    listener = dc.Listener("unix", path="/srv/postfix/queue/private/auth")
    assert dc.sasl_path(listener, "/srv/postfix/queue") == "private/auth"
    assert dc.sasl_path(dc.Listener("unix"), "/var/spool/postfix/") == "private/auth"


def test_sasl_path_for_inet():
    assert dc.sasl_path(dc.Listener("inet", address="10.0.0.5")) == "inet:10.0.0.5:12345"
    assert dc.sasl_path(dc.Listener("inet", address="10.0.0.5", port=2525)) == "inet:10.0.0.5:2525"


def test_sasl_path_brackets_ipv6():
    assert dc.sasl_path(dc.Listener("inet", address="fd00::5")) == "inet:[fd00::5]:12345"


@pytest.mark.parametrize(
    "listener",
    [
        dc.Listener("unix"),
        dc.Listener("inet", address="10.0.0.5"),
        dc.Listener("inet", address="fd00::5", port=65535),
    ],
)
def test_sasl_path_is_accepted_by_the_postfix_side(listener):
    assert features.sasl_path_problems(dc.sasl_path(listener)) == []


def test_socket_outside_the_queue_directory_refused():
    listener = dc.Listener("unix", path="/run/dovecot/auth-client")
    assert dc.sasl_path(listener) == "../../../run/dovecot/auth-client"
    problems = dc.sasl_path_problems(listener, "/var/spool/postfix")
    assert [p.field for p in problems] == ["socket_path"]
    assert "outside the Postfix queue directory /var/spool/postfix" in problems[0].message


def test_socket_in_a_sibling_directory_with_the_same_prefix_refused():
    listener = dc.Listener("unix", path="/var/spool/postfix2/private/auth")
    assert [p.field for p in dc.sasl_path_problems(listener, "/var/spool/postfix")] == ["socket_path"]


def test_socket_inside_the_queue_directory_and_inet_have_no_path_problems():
    assert dc.sasl_path_problems(dc.Listener("unix"), "/var/spool/postfix") == []
    assert dc.sasl_path_problems(dc.Listener("inet", address="10.0.0.5"), "/var/spool/postfix") == []


# -- mechanisms ------------------------------------------------------------------------


def test_mechanisms_split_on_spaces_and_commas_and_lowercase():
    assert dc.mechanisms("PLAIN, Login  cram-md5") == ["plain", "login", "cram-md5"]
    assert dc.mechanisms("   ") == []


@pytest.mark.parametrize("text", ["plain login", "PLAIN LOGIN", "plain,login", "Plain", "scram-sha-256 plain login"])
def test_known_mechanisms_accepted(text):
    assert dc.mechanism_problems(text) == []


def test_unknown_mechanism_refused_by_name():
    problems = dc.mechanism_problems("plain bogusmech")
    assert [p.field for p in problems] == ["auth_mechanisms"]
    assert problems[0].message.startswith("bogusmech not known to Dovecot 2.3")


def test_several_unknown_mechanisms_all_named():
    problems = dc.mechanism_problems("bogusmech PLAIN Other")
    assert problems[0].message.startswith("bogusmech, other not known to Dovecot 2.3")


@pytest.mark.parametrize("text", ["", "   ", ", ,"])
def test_no_mechanism_refused(text):
    assert dc.mechanism_problems(text) == [
        Problem("auth_mechanisms", "lists no mechanism; the guide uses: plain login")
    ]


# -- listener_problems -----------------------------------------------------------------


def test_default_unix_listener_is_fine():
    assert dc.listener_problems(dc.Listener("unix")) == []


@pytest.mark.parametrize(
    ("listener", "field"),
    [
        (dc.Listener("unix", path="private/auth"), "socket_path"),
        (dc.Listener("unix", path="/var/spool/postfix/../../tmp/auth"), "socket_path"),
        (dc.Listener("unix", mode="0999"), "socket_mode"),
        (dc.Listener("unix", mode="rw-rw----"), "socket_mode"),
        (dc.Listener("unix", mode="06600"), "socket_mode"),
        (dc.Listener("unix", user="Postfix"), "socket_user"),
        (dc.Listener("unix", user="postfix; rm -rf /"), "socket_user"),
        (dc.Listener("unix", group=""), "socket_group"),
    ],
)
def test_bad_unix_listener_refused(listener, field):
    assert [p.field for p in dc.listener_problems(listener)] == [field]


@pytest.mark.parametrize("mode", ["0660", "660", "0600", "0666"])
def test_octal_modes_accepted(mode):
    assert dc.listener_problems(dc.Listener("unix", mode=mode)) == []


def test_inet_listener_on_a_private_address_is_fine():
    assert dc.listener_problems(dc.Listener("inet", address="10.0.0.5")) == []
    assert dc.listener_problems(dc.Listener("inet", address="fd00::5", port=65535)) == []


@pytest.mark.parametrize("address", ["0.0.0.0", "::"])
def test_binding_all_interfaces_refused_unless_allowed(address):
    listener = dc.Listener("inet", address=address)
    problems = dc.listener_problems(listener)
    assert [p.field for p in problems] == ["bind_address"]
    assert "all interfaces" in problems[0].message
    assert dc.listener_problems(listener, allow_all_interfaces=True) == []


@pytest.mark.parametrize("port", [0, -1, 65536])
def test_inet_port_out_of_range_refused(port):
    assert dc.listener_problems(dc.Listener("inet", address="10.0.0.5", port=port)) == [
        Problem("listen_port", f"{port} is not a TCP port")
    ]


@pytest.mark.parametrize("address", ["", "auth.example.com", "10.0.0.256"])
def test_inet_bind_address_must_be_an_ip_address(address):
    assert dc.listener_problems(dc.Listener("inet", address=address)) == [
        Problem("bind_address", f"{address!r} is not an IP address of the Dovecot host")
    ]


def test_bad_port_and_bad_address_both_reported():
    problems = dc.listener_problems(dc.Listener("inet", address="nowhere", port=0))
    assert [p.field for p in problems] == ["listen_port", "bind_address"]


def test_unknown_listener_kind_refused():
    assert dc.listener_problems(dc.Listener("tcp")) == [Problem("listener", "must be unix or inet, got 'tcp'")]


# -- version ---------------------------------------------------------------------------


def test_parse_version_reads_all_four_components():
    assert dc.parse_version("2.3.19.1 (9b53102964)") == (2, 3, 19, 1)


def test_parse_version_of_debian_12_dovecot():
    version = dc.parse_version("2.3.19.1 (9b53102964)")
    assert version[:3] == (2, 3, 19)
    assert dc.version_supported(version)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2.3.21 (47349e2482)\n", (2, 3, 21)),
        ("  2.3.4\n", (2, 3, 4)),
        ("2.4.0 (0d8b7ab1b6)", (2, 4, 0)),
        ("2.3", (2, 3)),
    ],
)
def test_parse_version(text, expected):
    assert dc.parse_version(text) == expected


@pytest.mark.parametrize("text", ["", "none", "dovecot: command not found", "v2.3.19"])
def test_parse_version_refuses_text_without_a_version(text):
    with pytest.raises(ValueError, match="cannot read a Dovecot version"):
        dc.parse_version(text)


@pytest.mark.parametrize(
    ("version", "supported"),
    [
        ((2, 3), True),
        ((2, 3, 19), True),
        ((2, 3, 21, 1), True),
        ((2, 4, 0), True),
        ((2, 4, 1), True),
        ((2, 2, 36), False),
        ((2, 5, 0), False),
        ((3, 0), False),
    ],
)
def test_the_2_3_and_2_4_series_are_supported(version, supported):
    assert dc.version_supported(version) is supported
    assert (dc.version_refusal(version) is None) is supported


def test_an_unsupported_version_is_refused_by_its_number():
    assert dc.version_refusal((2, 2, 36)) == (
        "Dovecot 2.2.36 is not supported (only 2.3 and 2.4: each reads the auth settings its own way)"
    )


# -- Dovecot 2.4 -------------------------------------------------------------------------


def test_render_inet_listener_for_dovecot_2_4_exactly():
    """2.4 has no `address` in a listener (doveconf: "Unknown setting: address"); `listen` takes it."""
    listener = dc.Listener("inet", address="10.0.0.5", port=12345)
    assert dc.render(listener, "plain login", (2, 4, 1)) == HEADER + (
        "auth_mechanisms = plain login\n"
        "service auth {\n"
        "  inet_listener postfix_sasl {\n"
        "    listen = 10.0.0.5\n"
        "    port = 12345\n"
        "  }\n"
        "}\n"
    )


def test_render_unix_listener_is_the_same_file_on_2_3_and_2_4():
    listener = dc.Listener("unix", path="/var/spool/postfix/private/dovecot", mode="600", user="mail", group="mail")
    assert dc.render(listener, "plain", (2, 4, 1)) == dc.render(listener, "plain", (2, 3, 19, 1))
    assert dc.render(listener, "plain") == dc.render(listener, "plain", (2, 3))


@pytest.mark.parametrize("version", [(2, 3), (2, 3, 13), (2, 3, 19, 1)])
def test_render_for_any_2_3_keeps_the_address_setting(version):
    text = dc.render(dc.Listener("inet", address="fd00::5", port=2525), "plain", version)
    assert "    address = fd00::5\n    port = 2525\n" in text


@pytest.mark.parametrize("mechanism", ["ntlm", "rpa", "winbind"])
def test_a_mechanism_dovecot_2_4_lacks_is_refused_on_2_4_only(mechanism):
    text = f"plain {mechanism}"
    assert dc.mechanism_problems(text) == []
    assert dc.mechanism_problems(text, (2, 3, 19, 1)) == []
    problems = dc.mechanism_problems(text, (2, 4, 1))
    assert [p.field for p in problems] == ["auth_mechanisms"]
    assert problems[0].message.startswith(f"{mechanism} not known to Dovecot 2.4.1 (doveconf accepts it, but")
    assert "ntlm" not in problems[0].message.split("known: ")[1]


def test_a_mechanism_no_supported_dovecot_knows_is_refused_naming_both_series():
    problems = dc.mechanism_problems("plain bogusmech")
    assert problems[0].message.startswith("bogusmech not known to Dovecot 2.3 or 2.4 (")


def test_the_2_4_mechanisms_are_the_2_3_ones_less_three():
    assert dc.MECHANISMS_BY_SERIES[(2, 4)] == dc.KNOWN_MECHANISMS - {"ntlm", "rpa", "winbind"}
    assert dc.mechanism_problems("plain login scram-sha-256 gssapi", (2, 4, 1)) == []
