"""Values are checked against what Postfix and Dovecot read, before anything is written."""

import pytest

from secure_postfix import dovecot_auth
from secure_postfix.core import dovecot_conf as dc
from secure_postfix.core import postfix_features as features
from secure_postfix.core import postfix_rules as rules

INT_MAX = 2**31 - 1
LONG_MAX = 2**63 - 1


def problems(directives, **kw):
    return [str(p) for p in rules.check_directives(directives, **kw)]


def refused(name, value):
    found = problems({name: value})
    assert found, f"{name} = {value!r} was accepted"
    assert all(p.startswith(f"{name}: ") for p in found)
    return found[0]


# -- the data: Postfix's own tables ------------------------------------------------------------


def test_types_cover_the_guides_limits_as_postfix_reads_them():
    types = rules.parameter_types()
    assert {n: types[n].kind for n in rules.DOS_DIRECTIVES if n in types} == {
        "message_size_limit": "long",
        "header_size_limit": "int",
        "queue_minfree": "long",
        "default_process_limit": "int",
        "smtpd_client_connection_rate_limit": "int",
        "smtpd_client_message_rate_limit": "int",
        "anvil_rate_time_unit": "time",
    }
    assert types["default_process_limit"].minimum == 1 and types["anvil_rate_time_unit"].minimum == 1
    assert types["maximal_queue_lifetime"].unit == "d" and types["smtpd_timeout"].unit == "s"


def test_every_typed_parameter_is_one_postfix_3_7_knows():
    typed = {n for n, t in rules.parameter_types().items() if t.kind != "legacy"}
    assert typed <= rules.known_parameters()
    assert not rules.legacy_parameters() & rules.known_parameters()
    assert len([t for t in rules.parameter_types().values() if t.kind in ("int", "long")]) > 100


# -- numbers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("smtpd_client_connection_rate_limit", str(2**70)),  # 1180591620717411303424: smtpd dies
        ("smtpd_client_connection_rate_limit", str(INT_MAX + 1)),
        ("header_size_limit", str(INT_MAX + 1)),
        ("message_size_limit", str(LONG_MAX + 1)),
        ("smtpd_recipient_limit", "1; reboot"),
        ("smtpd_recipient_limit", ""),
        ("smtpd_recipient_limit", "0"),  # Postfix's own minimum is 1
        ("default_process_limit", "0"),
        ("default_process_limit", "-1"),
        ("default_process_limit", "+5"),
        ("default_process_limit", " 5"),
        ("default_process_limit", "5 "),
        ("default_process_limit", "0x10"),
        ("default_process_limit", "1e3"),
        ("default_process_limit", "1_000"),
        ("default_process_limit", "\u0661\u0660\u0660"),  # Arabic-Indic digits: str.isdigit() says yes
        ("default_process_limit", "\uff11\uff10"),  # fullwidth digits
        ("delay_logging_resolution_limit", "7"),  # Postfix's own maximum is 6
        ("smtpd_client_message_rate_limit", "10M"),
    ],
)
def test_numbers_postfix_cannot_read_are_refused(name, value):
    message = refused(name, value)
    assert "whole number" in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("smtpd_client_connection_rate_limit", str(INT_MAX)),
        ("smtpd_client_connection_rate_limit", "0"),
        ("message_size_limit", str(LONG_MAX)),
        ("message_size_limit", "3000000000"),  # above INT_MAX: fine for a long
        ("delay_logging_resolution_limit", "6"),
        ("smtpd_recipient_limit", "$default_process_limit"),
        ("smtpd_recipient_limit", "${default_process_limit}"),
        ("smtpd_recipient_limit", "$(default_process_limit)"),
        ("smtpd_hard_error_limit", "${stress?{1}:{20}}"),  # STRESS_README's own example
        ("postscreen_dnsbl_allowlist_threshold", "-1"),  # documented as meaningful below zero
    ],
)
def test_numbers_postfix_reads_are_accepted(name, value):
    assert problems({name: value}) == []


def test_too_large_names_the_c_type_and_the_crash():
    message = refused("smtpd_client_connection_rate_limit", str(2**70))
    assert str(INT_MAX) in message and "bad numerical configuration" in message


def test_a_numeric_parameter_is_checked_under_directives_too():
    # check_directives sees limits and directives alike; a non-guide number is typed all the same.
    assert "whole number" in refused("smtpd_recipient_limit", str(2**70))
    assert "whole number" in refused("qmgr_message_active_limit", "lots")


# -- time values and booleans ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("anvil_rate_time_unit", "0"),
        ("anvil_rate_time_unit", "60x"),
        ("anvil_rate_time_unit", "60 s"),
        ("anvil_rate_time_unit", "1ms"),
        ("anvil_rate_time_unit", "60S"),
        ("anvil_rate_time_unit", ""),
        ("anvil_rate_time_unit", str(INT_MAX + 1)),
        ("anvil_rate_time_unit", f"{INT_MAX // 60}m"),  # conv_time: must stay below INT_MAX / 60
        ("smtpd_timeout", "${stress?{10}:{x}}s"),
        ("maximal_queue_lifetime", "101d"),  # Postfix's own maximum is 100 days
        ("maximal_queue_lifetime", "9000000"),  # a bare number counts in days here
    ],
)
def test_bad_time_values_are_refused(name, value):
    assert "time value" in refused(name, value) or "seconds" in refused(name, value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("anvil_rate_time_unit", "60s"),
        ("anvil_rate_time_unit", "60"),
        ("anvil_rate_time_unit", "1w"),
        ("anvil_rate_time_unit", f"{INT_MAX // 60 - 1}m"),
        ("anvil_rate_time_unit", str(INT_MAX)),
        ("maximal_queue_lifetime", "5"),
        ("smtpd_timeout", "${stress?{10}:{300}}s"),
    ],
)
def test_good_time_values_are_accepted(name, value):
    assert problems({name: value}) == []


@pytest.mark.parametrize("value", ["true", "1", "", "y", "yes please", "$myhostname"])
def test_booleans_are_yes_or_no(value):
    refused("smtpd_helo_required", value)


@pytest.mark.parametrize("value", ["yes", "no", "YES", "No", "$smtpd_use_tls"])
def test_booleans_postfix_reads(value):
    assert problems({"smtpd_helo_required": value}) == []


def test_a_conditional_that_can_be_empty_is_refused_for_a_number():
    assert "can expand to ''" in refused("smtpd_recipient_limit", "${stress?5}")


# -- $-expressions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "$(touch /tmp/pwned)",
        "${touch /tmp/pwned}",
        "$nosuchparameter",
        "${nosuchparameter}",
        "${mynetworks",
        "$",
        "192.0.2.1 $",
        "$ mynetworks",
        "${{$compatibility_level} <level {3.6} ? {a} : {b}}",
        "${mynetworks?{$nosuch}}",
    ],
)
def test_junk_after_a_dollar_is_refused(value):
    refused("smtpd_client_event_limit_exceptions", value)


@pytest.mark.parametrize(
    "value",
    [
        "$mynetworks",
        "${mynetworks}",
        "$(mynetworks)",
        "${smtpd_client_connection_limit_exceptions:$mynetworks}",  # Postfix 3.7's own default
        "${mynetworks?{$mynetworks}:{192.0.2.0/24}}",
        "$mynetworks, 192.0.2.0/24",
    ],
)
def test_references_postfix_knows_are_accepted(value):
    assert problems({"smtpd_client_event_limit_exceptions": value}) == []


def test_literal_dollar_and_legacy_names():
    assert problems({"smtpd_banner": "$myhostname ESMTP costs $$0"}) == []
    assert problems({"virtual_alias_maps": "$virtual_maps"}) == []  # still expanded by Postfix 3.7


def test_raw_parameters_keep_their_per_delivery_variables():
    # forward_path is never $-expanded when main.cf is read; $home is filled in per delivery.
    assert problems({"forward_path": "$home/.forward${recipient_delimiter}${extension}"}) == []


def test_expansion_names_are_checked_against_the_hosts_own_list_at_apply():
    known = rules.known_parameters() | {"new_in_3_9"}
    assert problems({"smtpd_banner": "$new_in_3_9"}, known=known) == []
    assert problems({"smtpd_banner": "$new_in_3_9"})


# -- one line of text: everything a reader could split a line at ---------------------------------

LINE_BREAKS = ["\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
CONTROLS = ["\x00", "\t", "\x1b", "\x7f", "\x9b", "\u202e", "\u200b", "\ufeff"]


def test_every_character_splitlines_splits_at_is_in_the_list():
    splitters = {chr(c) for c in range(0x110000) if len(f"a{chr(c)}b".splitlines()) > 1}
    assert splitters == set(LINE_BREAKS)


@pytest.mark.parametrize("char", LINE_BREAKS + CONTROLS, ids=lambda c: f"U+{ord(c):04X}")
def test_line_breaks_and_control_characters_are_refused_in_main_cf(char):
    message = refused("myhostname", f"mx.example.com{char}relayhost = [192.0.2.1]")
    assert f"U+{ord(char):04X}" in message and "one line" in message


@pytest.mark.parametrize("char", LINE_BREAKS + CONTROLS, ids=lambda c: f"U+{ord(c):04X}")
def test_line_breaks_are_refused_in_every_kind_of_value(char):
    for name in ("message_size_limit", "anvil_rate_time_unit", "smtpd_helo_required", "forward_path"):
        refused(name, f"1{char}")


def test_printable_unicode_is_fine_where_postfix_takes_text():
    assert problems({"smtpd_banner": "$myhostname ESMTP Grüße"}) == []


def test_a_stray_closing_brace_is_refused():
    assert "}" in refused("smtpd_client_restrictions", "permit_mynetworks }")
    assert problems({"smtpd_client_restrictions": "check_client_access inline:{ 192.0.2.1=OK }"}) == []


def test_names_with_a_trailing_newline_are_refused():
    assert problems({"myhostname\n": "x"}) == [
        "myhostname\n: is not a valid main.cf parameter name (letters, digits and _ only)"
    ]


# -- Dovecot's file ------------------------------------------------------------------------------

INJECTION = "fe80::1%x\n  }\npassdb {\n  driver = static\n  args = nopassword=y\n}\nservice auth {\n  inet_listener x {"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
DOVECOT = {"host": "10.0.0.5", "port": 22, "private_key": "K", "host_key": HOST_KEY, "listener": "inet"}


def dovecot_fields(**props):
    return [p.field for p in dovecot_auth.check_props({**DOVECOT, **props})]


@pytest.mark.parametrize(
    "address",
    [INJECTION, "fe80::1%eth0", "10.0.0.5\n", "10.0.0.5 ", " 10.0.0.5", "10.0.0.5}", "::1%1", "10.0.0.5\u2028"],
)
def test_bind_address_must_be_a_plain_ip_address(address):
    assert dovecot_fields(bind_address=address) == ["bind_address"]


@pytest.mark.parametrize("address", ["10.0.0.5", "::1", "2001:db8::25", "fe80::1"])
def test_plain_ip_addresses_are_accepted(address):
    assert dovecot_fields(bind_address=address) == []


@pytest.mark.parametrize(
    "path",
    [
        "/var/spool/postfix/private/auth {\n}\npassdb {",
        "/var/spool/postfix/private/a uth",
        "/var/spool/postfix/private/auth\n",
        "/var/spool/postfix/private/auth\u2028",
        '/var/spool/postfix/private/"auth"',
        "/var/spool/postfix/private/auth#",
        "/var/spool/postfix/private/$auth",
        "/var/spool/postfix/private/<auth",
        "/var/spool/postfix/private/a=b",
        "/var/spool/postfix/private/../private/auth",
        "/var/spool/postfix//private/auth",
        "private/auth",
    ],
)
def test_socket_path_is_refused_by_the_providers_own_check(path):
    # A library caller of DovecotAuthService reaches this check without any stack config.
    assert set(dovecot_fields(listener="unix", socket_path=path)) == {"socket_path"}


def test_the_default_socket_path_is_fine():
    assert dovecot_fields(listener="unix", socket_path="/var/spool/postfix/private/auth") == []


@pytest.mark.parametrize(
    ("field", "value"), [("socket_mode", "660\n"), ("socket_user", "postfix\n"), ("socket_group", "post fix")]
)
def test_socket_owner_and_mode_take_no_line_breaks(field, value):
    assert dovecot_fields(listener="unix", **{field: value}) == [field]


@pytest.mark.parametrize("text", ["plain\nlogin", "plain\u2028login", "plain }", 'plain "login"', "plain #x", "$x"])
def test_mechanisms_with_dovecot_syntax_are_refused(text):
    assert dovecot_fields(bind_address="10.0.0.5", auth_mechanisms=text) == ["auth_mechanisms"]


def test_the_rendered_file_of_an_accepted_listener_has_the_expected_lines_only():
    text = dc.render(dc.Listener("inet", address="2001:db8::25", port=12345), "plain login")
    assert text.count("\n") == len(text.splitlines()) == 9
    assert text.count("{") == text.count("}") == 2


@pytest.mark.parametrize("path", ["private/auth\n", "inet:10.0.0.5:12345\n", "inet:10.0.0.5:\u0661\u0662"])
def test_sasl_path_given_to_postfix_is_one_line(path):
    assert [p.field for p in features.sasl_path_problems(path)] == ["sasl.path"]


# -- every typed parameter at its bounds -----------------------------------------------------------


def typed(*kinds):
    return sorted((n, t) for n, t in rules.parameter_types().items() if t.kind in kinds)


def typed_ok(name, value):
    """The type rule alone (the guide's cross-field rules are tested on their own)."""
    return rules.check_typed_value(name, value) == []


@pytest.mark.parametrize(("name", "ptype"), typed("int", "long"), ids=lambda v: v if isinstance(v, str) else "")
def test_every_number_parameter_at_its_bounds(name, ptype):
    ceiling = LONG_MAX if ptype.kind == "long" else INT_MAX
    low, high = ptype.minimum, ptype.maximum or ceiling
    assert typed_ok(name, str(low)) and typed_ok(name, str(high))
    assert not typed_ok(name, str(high + 1))
    assert low == 0 or not typed_ok(name, str(low - 1))
    assert not typed_ok(name, f"{low}x")


@pytest.mark.parametrize(("name", "ptype"), typed("time"), ids=lambda v: v if isinstance(v, str) else "")
def test_every_time_parameter_at_its_bounds(name, ptype):
    high = ptype.maximum or INT_MAX
    assert typed_ok(name, f"{high}s") and typed_ok(name, f"{max(ptype.minimum, 1)}s")
    assert not typed_ok(name, f"{high + 1}s")
    assert ptype.minimum == 0 or not typed_ok(name, f"{ptype.minimum - 1}s")


@pytest.mark.parametrize(("name", "ptype"), typed("bool"), ids=lambda v: v if isinstance(v, str) else "")
def test_every_boolean_parameter(name, ptype):
    assert typed_ok(name, "yes") and typed_ok(name, "no") and not typed_ok(name, "true")
