"""The provider checks that need no host: PostfixConfig, DovecotAuthService and the connection fields."""

import asyncio
import dataclasses

import pulumi
import pytest
from pulumi.output import Unknown

from secure_postfix import connection as conn
from secure_postfix import dovecot_auth as da
from secure_postfix import postfix_config as pc
from secure_postfix.core import dovecot_conf as dc
from secure_postfix.core.postfix_rules import Problem
from secure_postfix.remote.postfix_host import PostfixFacts
from tests.tls_files import make_pair as make_tls_pair
from tests.unit.test_tls_policy import POLICY_DEFAULTS


def make_pair():
    return make_tls_pair("mx.example.test", days=90)


@pytest.fixture(scope="module")
def pair():
    return make_pair()


@pytest.fixture(scope="module")
def other_key():
    return make_pair()[1]


CONNECTION = {
    "host": "10.0.0.2",
    "port": 22,
    "user": "root",
    "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
    "private_key": "placeholder: check_props only needs a non-empty key",
}

LIMITS = {"message_size_limit": 10240000, "queue_minfree": 15360000, "anvil_rate_time_unit": "60s"}


def postfix_props(pair, **changes):
    cert, key = pair
    props = {
        **CONNECTION,
        "insecure_ignore_host_key": False,
        "use_sudo": False,
        "limits": dict(LIMITS),
        "directives": {"smtpd_banner": "$myhostname ESMTP"},
        "sasl": {"path": "private/auth"},
        "tls": {"cert_pem": cert, "security_level": "may", "protocols": ">=TLSv1.2", "public_mx": True},
        "tls_key_pem": key,
    }
    props.update(changes)
    return props


def texts(problems):
    return [str(p) for p in problems]


# -- PostfixConfig: fold_main_cf --------------------------------------------------------


def test_fold_main_cf_is_the_whole_main_cf(pair):
    assert pc.fold_main_cf(postfix_props(pair)) == {
        "message_size_limit": "10240000",
        "queue_minfree": "15360000",
        "anvil_rate_time_unit": "60s",
        "smtpd_banner": "$myhostname ESMTP",
        "smtpd_sasl_auth_enable": "yes",
        "smtpd_sasl_type": "dovecot",
        "smtpd_sasl_path": "private/auth",
        "smtpd_sasl_security_options": "noanonymous, noplaintext",
        "smtpd_sasl_tls_security_options": "noanonymous",
        "smtpd_tls_cert_file": "/etc/postfix/tls/secure-postfix.pem",
        "smtpd_tls_key_file": "/etc/postfix/tls/secure-postfix.pem",
        "smtpd_tls_security_level": "may",
        "smtpd_tls_auth_only": "yes",
        "smtpd_tls_protocols": ">=TLSv1.2",
        "smtpd_tls_mandatory_protocols": ">=TLSv1.2",
        "smtp_tls_security_level": "may",
        **POLICY_DEFAULTS,
    }


def test_fold_main_cf_writes_values_as_main_cf_text():
    props = {"limits": {"message_size_limit": 20480000.0}, "directives": {"biff": False, "mynetworks": ["a", "b"]}}
    assert pc.fold_main_cf(props) == {"message_size_limit": "20480000", "biff": "no", "mynetworks": "a, b"}


def test_fold_main_cf_without_sasl_or_tls_has_no_sasl_or_tls_lines():
    assert pc.fold_main_cf({"limits": {"queue_minfree": 0}, "sasl": None, "tls": None}) == {"queue_minfree": "0"}


def test_fold_main_cf_keeps_an_unknown_sasl_path_in_place(pair):
    path = Unknown()
    main_cf = pc.fold_main_cf(postfix_props(pair, sasl={"path": path}))
    assert main_cf["smtpd_sasl_path"] is path
    assert main_cf["smtpd_sasl_auth_enable"] == "yes"
    assert list(main_cf).index("smtpd_sasl_path") == list(main_cf).index("smtpd_sasl_type") + 1


def test_fold_main_cf_keeps_an_unknown_directive():
    value = Unknown()
    assert pc.fold_main_cf({"directives": {"relayhost": value}})["relayhost"] is value


# -- PostfixConfig: check_props ---------------------------------------------------------


def test_full_site_has_no_problems(pair):
    assert pc.check_props(postfix_props(pair)) == []


def test_unknown_sasl_path_and_host_report_no_false_errors(pair):
    props = postfix_props(pair, host=Unknown(), sasl={"path": Unknown()})
    assert pc.check_props(props) == []


def test_unknown_sasl_path_still_checks_the_known_rest(pair):
    props = postfix_props(pair, host=Unknown(), sasl={"path": Unknown()}, limits={"message_size_limit": "10M"})
    assert [p.field for p in pc.check_props(props)] == ["message_size_limit"]


def test_unknown_blocks_skip_every_rule_but_the_connection(pair):
    props = postfix_props(pair, directives=Unknown(), host="")
    assert texts(pc.check_props(props)) == ["host: is required: the address or name of the host to configure"]


def test_limit_that_is_not_the_guides(pair):
    problems = pc.check_props(postfix_props(pair, limits={"smtpd_banner": "hi"}, directives={}))
    assert problems == [Problem("limits.smtpd_banner", "is not one of the guide's limits; use directives")]


def test_directive_also_under_limits(pair):
    props = postfix_props(pair, directives={"message_size_limit": 20480000})
    assert Problem("directives.message_size_limit", "is also set under limits; set it in one place") in (
        pc.check_props(props)
    )


def test_directive_owned_by_the_tls_block(pair):
    problems = pc.check_props(postfix_props(pair, directives={"smtpd_tls_auth_only": "no"}))
    assert problems == [Problem("directives.smtpd_tls_auth_only", "is set by the sasl/tls settings; change it there")]


def test_absolute_sasl_path_refused(pair):
    problems = pc.check_props(postfix_props(pair, sasl={"path": "/var/spool/postfix/private/auth"}))
    assert [p.field for p in problems] == ["sasl.path"]


def test_sasl_without_tls_refused(pair):
    props = postfix_props(pair, tls=None, tls_key_pem=None)
    assert [p.field for p in pc.check_props(props)] == ["sasl"]


def test_tls_without_key_refused(pair):
    problems = pc.check_props(postfix_props(pair, tls_key_pem=None))
    assert texts(problems) == ["tls_key_pem: is required with tls: the private key (a Pulumi secret)"]


def test_tls_with_another_key_refused(pair, other_key):
    problems = pc.check_props(postfix_props(pair, tls_key_pem=other_key))
    assert texts(problems) == ["tls_key_pem: does not match the certificate in tls.cert_pem (different public key)"]


def test_encrypt_on_public_mx_refused_but_allowed_otherwise(pair):
    tls = {"cert_pem": pair[0], "security_level": "encrypt"}
    assert [p.field for p in pc.check_props(postfix_props(pair, tls=tls))] == ["tls.security_level"]
    assert pc.check_props(postfix_props(pair, tls={**tls, "public_mx": False})) == []


def test_guide_cross_field_rule_applies_to_folded_limits(pair):
    props = postfix_props(pair, limits={"message_size_limit": 10240000, "queue_minfree": 10240000})
    assert [p.field for p in pc.check_props(props)] == ["queue_minfree"]


def test_misspelt_directive_refused(pair):
    problems = pc.check_props(postfix_props(pair, directives={"smtpd_tls_auth_onyl": "yes"}))
    assert [p.field for p in problems] == ["smtpd_tls_auth_onyl"]


# -- PostfixConfig: checked_inputs ------------------------------------------------------


def test_checked_inputs_store_connection_main_cf_and_tls_material(pair):
    props = postfix_props(pair)
    inputs = pc.checked_inputs(props)
    assert sorted(inputs) == sorted(
        [
            "host",
            "port",
            "user",
            "host_key",
            "private_key",
            "insecure_ignore_host_key",
            "use_sudo",
            "main_cf",
            "tls_cert_pem",
            "tls_certificate",
            "tls_key_pem",
        ]
    )
    assert inputs["main_cf"] == pc.fold_main_cf(props)
    # The PEM, and the one line that stands for it in a diff (PostfixConfig hides the PEM's own).
    assert inputs["tls_cert_pem"] == pair[0]
    assert inputs["tls_certificate"].startswith("expires ") and "\n" not in inputs["tls_certificate"]
    assert inputs["tls_key_pem"] == pair[1]
    # The user-facing blocks are folded into main_cf, not stored twice.
    assert not {"limits", "directives", "sasl", "tls"} & set(inputs)


def test_checked_inputs_drop_the_key_without_tls(pair):
    inputs = pc.checked_inputs(postfix_props(pair, sasl=None, tls=None))
    assert "tls_cert_pem" not in inputs and "tls_certificate" not in inputs
    assert "tls_key_pem" not in inputs
    assert "smtpd_tls_auth_only" not in inputs["main_cf"]


def test_checked_inputs_keep_unknowns(pair):
    host, path = Unknown(), Unknown()
    inputs = pc.checked_inputs(postfix_props(pair, host=host, sasl={"path": path}))
    assert inputs["host"] is host
    assert inputs["main_cf"]["smtpd_sasl_path"] is path


# -- PostfixConfig: originals ------------------------------------------------------------


def test_originals_round_trip_through_state():
    originals = {"queue_minfree": None, "message_size_limit": "message_size_limit = 10240000\n"}
    stored = pc.originals_to_state(originals)
    assert stored == {"queue_minfree": "", "message_size_limit": "message_size_limit = 10240000\n"}
    assert pc.originals_from_state(stored) == originals


def test_originals_from_empty_state():
    assert pc.originals_from_state(None) == {}
    assert pc.originals_from_state({}) == {}


# -- DovecotAuthService -------------------------------------------------------------------


def test_listener_from_defaults():
    assert da.listener_from({"host": "mail.example.test"}) == dc.Listener(
        kind="unix",
        path="/var/spool/postfix/private/auth",
        mode="0660",
        user="postfix",
        group="postfix",
        address="",
        port=12345,
    )


def test_listener_from_binds_to_the_hosts_ip_address_by_default():
    listener = da.listener_from({"host": "10.0.0.5", "listener": "inet"})
    assert (listener.kind, listener.address, listener.port) == ("inet", "10.0.0.5", 12345)
    assert da.listener_from({"host": "fd00::5", "listener": "inet"}).address == "fd00::5"


def test_listener_from_takes_every_setting():
    props = {
        "host": "10.0.0.5",
        "listener": "inet",
        "bind_address": "10.0.1.5",
        "listen_port": "2525",
        "socket_path": "/var/spool/postfix/private/dovecot",
        "socket_mode": "0600",
        "socket_user": "mail",
        "socket_group": "mail",
    }
    assert da.listener_from(props) == dc.Listener(
        "inet", "/var/spool/postfix/private/dovecot", "0600", "mail", "mail", "10.0.1.5", 2525
    )


def dovecot_props(**changes):
    return {**CONNECTION, "host": "10.0.0.5", "listener": "unix", "auth_mechanisms": "plain login", **changes}


def test_dovecot_unix_listener_has_no_problems():
    assert da.check_props(dovecot_props()) == []


def test_dovecot_inet_listener_on_the_hosts_address_has_no_problems():
    assert da.check_props(dovecot_props(listener="inet")) == []


def test_dovecot_inet_listener_on_a_named_host_needs_a_bind_address():
    problems = da.check_props(dovecot_props(listener="inet", host="auth.example.test"))
    assert texts(problems) == ["bind_address: is required: host 'auth.example.test' is not an IP address to bind to"]
    assert da.check_props(dovecot_props(listener="inet", host="auth.example.test", bind_address="10.0.0.5")) == []


def test_dovecot_bind_to_all_interfaces_refused_unless_allowed():
    props = dovecot_props(listener="inet", bind_address="0.0.0.0")
    assert [p.field for p in da.check_props(props)] == ["bind_address"]
    assert da.check_props({**props, "allow_all_interfaces": True}) == []


@pytest.mark.parametrize(("mechanisms", "ok"), [("bogusmech", False), ("PLAIN LOGIN", True), ("", True), ("  ", False)])
def test_dovecot_mechanisms(mechanisms, ok):
    # An unset (empty) setting falls back to the guide's "plain login"; blanks list no mechanism.
    problems = da.check_props(dovecot_props(auth_mechanisms=mechanisms))
    assert [p.field for p in problems] == ([] if ok else ["auth_mechanisms"])


def test_dovecot_socket_outside_the_queue_directory_refused():
    problems = da.check_props(dovecot_props(socket_path="/run/dovecot/auth-client"))
    assert [p.field for p in problems] == ["socket_path"]


def test_dovecot_custom_queue_directory():
    props = dovecot_props(socket_path="/srv/queue/private/auth", postfix_queue_directory="/srv/queue")
    assert da.check_props(props) == []
    assert da.checked_inputs(props)["sasl_path"] == "private/auth"


def test_dovecot_unknown_host_reports_no_false_errors():
    assert da.check_props(dovecot_props(listener="inet", host=Unknown())) == []


def test_dovecot_connection_problems_still_reported():
    props = dovecot_props(port=0, host_key=None)
    assert [p.field for p in da.check_props(props)] == ["port", "host_key"]


def test_dovecot_checked_inputs_hold_the_sasl_path_not_the_file():
    inputs = da.checked_inputs(dovecot_props(listener="inet"))
    assert inputs["sasl_path"] == "inet:10.0.0.5:12345"
    # The file's text would print whole in every diff of one setting: it is an output only.
    assert "managed_file" not in inputs and "managed_file" in da.COMPUTED_OUTPUTS
    assert "socket_path" not in inputs  # unset settings are not stored as nulls


def test_dovecot_drift_is_one_line_naming_the_file():
    desired = dc.render(dc.Listener("inet", address="10.0.0.5"), "plain login")
    assert "    address = 10.0.0.5\n    port = 12345\n" in desired
    assert da.drift_of(desired, desired) is None
    assert da.drift_of(None, desired) == f"{dc.CONFIG_FILE} is missing on the host"
    edited = da.drift_of(desired.replace("10.0.0.5", "0.0.0.0"), desired)
    assert edited.startswith(f"{dc.CONFIG_FILE} was changed on the host (sha256 ") and "\n" not in edited


def test_dovecot_checked_inputs_unix_sasl_path():
    assert da.checked_inputs(dovecot_props())["sasl_path"] == "private/auth"


def test_dovecot_checked_inputs_with_unknown_host_leave_sasl_path_unknown():
    host = Unknown()
    inputs = da.checked_inputs(dovecot_props(listener="inet", host=host))
    assert inputs["host"] is host
    assert "sasl_path" not in inputs
    assert "managed_file" not in inputs


def test_dovecot_listen_port_zero_refused():
    assert [p.field for p in da.check_props(dovecot_props(listener="inet", listen_port=0))] == ["listen_port"]


def test_dovecot_listen_port_out_of_range_refused():
    problems = da.check_props(dovecot_props(listener="inet", listen_port=70000))
    assert texts(problems) == ["listen_port: 70000 is not a TCP port"]


# -- connection ---------------------------------------------------------------------------


def test_complete_connection_has_no_problems():
    assert conn.check_connection(CONNECTION) == []


def test_empty_connection_names_every_missing_field():
    assert [p.field for p in conn.check_connection({})] == ["host", "port", "private_key", "host_key"]


@pytest.mark.parametrize("host", ["", "   ", None, 10])
def test_host_required(host):
    assert [p.field for p in conn.check_connection({**CONNECTION, "host": host})] == ["host"]


@pytest.mark.parametrize("port", [0, 65536, -22, "22", None])
def test_port_must_be_a_tcp_port(port):
    assert texts(conn.check_connection({**CONNECTION, "port": port})) == [
        f"port: must be a TCP port number, got {port!r}"
    ]


def test_port_from_yaml_as_float_is_accepted():
    assert conn.check_connection({**CONNECTION, "port": 2222.0}) == []


def test_host_key_required_unless_ignored_deliberately():
    props = {**CONNECTION, "host_key": None}
    assert [p.field for p in conn.check_connection(props)] == ["host_key"]
    assert conn.check_connection({**props, "insecure_ignore_host_key": True}) == []


def test_unknown_connection_values_are_not_checked():
    props = {**CONNECTION, "host": Unknown(), "port": Unknown(), "private_key": Unknown()}
    assert conn.check_connection(props) == []


def test_host_label():
    assert conn.host_label({"host": "10.0.0.2"}) == "10.0.0.2"
    assert conn.host_label({"host": Unknown()}) == "(host not known yet)"
    assert conn.host_label({}) == "(host not known yet)"


@pytest.mark.parametrize(
    ("olds", "news", "replaced"),
    [
        ({"host": "a", "port": 22}, {"host": "a", "port": 22}, []),
        ({"host": "a", "port": 22}, {"host": "b", "port": 22}, ["host"]),
        ({"host": "a", "port": 22}, {"host": "a", "port": 2222}, ["port"]),
        ({"host": "a", "port": 22}, {"host": "b", "port": 2222}, ["host", "port"]),
        ({"host": "a", "port": 22, "user": "root"}, {"host": "a", "port": 22, "user": "deploy"}, []),
        ({"host": "a", "port": 22}, {"host": Unknown(), "port": 22}, ["host"]),
        ({"host": "a", "port": 22}, {"host": Unknown(), "port": 2222}, ["port", "host"]),
    ],
)
def test_replaced_fields(olds, news, replaced):
    assert conn.replaced_fields(olds, news) == replaced


def test_connection_props_from_a_dict_keep_secrets_secret():
    async def run():
        props = conn.connection_props(
            {"host": "10.0.0.2", "private_key": "KEY", "private_key_password": "PW", "use_sudo": True}
        )
        resolved = {}
        for name in ("private_key", "private_key_password"):
            value = props[name]
            assert isinstance(value, pulumi.Output)
            resolved[name] = (await value.is_secret(), await value.future())
        return props, resolved

    props, resolved = asyncio.run(run())
    assert resolved == {"private_key": (True, "KEY"), "private_key_password": (True, "PW")}
    assert {k: v for k, v in props.items() if k not in ("private_key", "private_key_password")} == {
        "host": "10.0.0.2",
        "port": 22,
        "user": "root",
        "host_key": None,
        "insecure_ignore_host_key": False,
        "use_sudo": True,
    }


def test_connection_props_options_from_arguments_or_the_dict():
    props = conn.connection_props(
        {"host": "h", "port": 2222, "user": "deploy", "host_key": "ssh-ed25519 AAAA", "insecure_ignore_host_key": True},
        use_sudo=True,
    )
    assert props == {
        "host": "h",
        "port": 2222,
        "user": "deploy",
        "host_key": "ssh-ed25519 AAAA",
        "private_key": None,
        "private_key_password": None,
        "insecure_ignore_host_key": True,
        "use_sudo": True,
    }


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pulumi_command.remote imports its deprecated CopyFile
def test_connection_props_from_pulumi_command_connection_args():
    from pulumi_command.remote import ConnectionArgs

    async def run():
        args = ConnectionArgs(host="192.0.2.25", port=2222, user="deploy", private_key="KEY", host_key="ssh-ed25519 AA")
        props = conn.connection_props(args, use_sudo=True)
        return props, await props["private_key"].is_secret(), await props["private_key"].future()

    props, secret, key = asyncio.run(run())
    assert (secret, key) == (True, "KEY")
    assert {k: props[k] for k in ("host", "port", "user", "host_key", "use_sudo", "insecure_ignore_host_key")} == {
        "host": "192.0.2.25",
        "port": 2222,
        "user": "deploy",
        "host_key": "ssh-ed25519 AA",
        "use_sudo": True,
        "insecure_ignore_host_key": False,
    }


# -- PostfixConfig: the rules again with the host's own facts (apply time) ---------------------


def host_facts(main_cf: str = "", parameters: tuple[str, ...] = ()) -> PostfixFacts:
    known = {"message_size_limit", "queue_minfree", "smtpd_tls_auth_only", *parameters}
    return PostfixFacts(
        main_cf=main_cf, version="3.7.11", parameters=frozenset(known), config_directory="/etc/postfix", log_file=None
    )


def test_on_host_a_directive_the_hosts_postconf_d_lacks_is_refused():
    """smtpd_sasl_path is in Postfix 3.7's list (preview passes), but this host's `postconf -d` has no such name."""
    desired = {"message_size_limit": "10240000", "smtpd_sasl_path": "private/auth"}
    assert not [p for p in pc.check_props({"main_cf": {}, "directives": desired}) if "smtpd_sasl_path" in str(p)]
    with pytest.raises(pc.ApplyError) as refused:
        pc._check_on_host("10.0.0.5", desired, host_facts())
    message = str(refused.value)
    assert message.startswith("10.0.0.5: ") and "smtpd_sasl_path" in message and "Nothing was changed" in message
    pc._check_on_host("10.0.0.5", desired, host_facts(parameters=("smtpd_sasl_path",)))  # known there: accepted


def test_facts_read_for_a_refresh_never_pass_a_change_unchecked():
    """A refresh's facts carry no `postconf -d` names; checking a change against them is a bug, not an empty list."""
    facts = dataclasses.replace(host_facts(), parameters=None)
    with pytest.raises(RuntimeError, match="facts read for a refresh"):
        pc._check_on_host("10.0.0.5", {"smtpd_sasl_path": "private/auth"}, facts)


def test_on_host_the_hosts_own_unmanaged_limit_enters_the_cross_field_rule():
    with pytest.raises(pc.ApplyError, match=r"queue_minfree.*30720000"):
        pc._check_on_host("10.0.0.5", {"queue_minfree": "15360000"}, host_facts("message_size_limit = 20480000\n"))
    pc._check_on_host("10.0.0.5", {"queue_minfree": "15360000"}, host_facts("message_size_limit = 10240000\n"))


@pytest.mark.parametrize(
    ("block", "name", "value"),
    [
        ("directives", "smtpd_timeout", [60]),
        ("limits", "message_size_limit", [10240000]),
        ("directives", "smtpd_tls_auth_only", ["yes"]),
    ],
)
def test_a_list_for_a_single_value_parameter_is_refused_by_name(pair, block, name, value):
    # Written as text, [60] would read "60": the mistake would reach the host unseen (found by the fuzzer).
    props = postfix_props(pair)
    props[block] = {**props[block], name: value}
    problems = [str(p) for p in pc.check_props(props)]
    assert any(p.startswith(f"{block}.{name}: takes one value, not a list") for p in problems), problems


def test_two_spaces_in_a_row_are_refused_because_postfix_reads_one(pair):
    # postconf -h smtpd_banner of `smtpd_banner = 0  0` prints `0 0` (found by the fuzzer): state and host would differ.
    props = postfix_props(pair, directives={"smtpd_banner": "$myhostname  ESMTP"})
    problems = [str(p) for p in pc.check_props(props)]
    assert any("smtpd_banner: has two spaces in a row, which Postfix reads as one" in p for p in problems), problems
