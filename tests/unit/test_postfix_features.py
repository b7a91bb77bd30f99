import pytest
from pulumi.output import Unknown

from secure_postfix.core import postfix_features as features
from secure_postfix.core.postfix_rules import Problem
from secure_postfix.postfix_config import fold_main_cf
from tests.unit.settings_as_provider import sasl_directives, sasl_problems, tls_directives, tls_problems
from tests.unit.test_tls_policy import POLICY_DEFAULTS


def is_unknown(value):
    return isinstance(value, Unknown)


def texts(problems):
    return [str(p) for p in problems]


GOOD_TLS = {"cert_pem": "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n"}


# -- sasl_directives -------------------------------------------------------------------


def test_sasl_directives_are_the_guides_exactly():
    assert sasl_directives({"path": "private/auth"}) == {
        "smtpd_sasl_auth_enable": "yes",
        "smtpd_sasl_type": "dovecot",
        "smtpd_sasl_path": "private/auth",
        "smtpd_sasl_security_options": "noanonymous, noplaintext",
        "smtpd_sasl_tls_security_options": "noanonymous",
    }


def test_sasl_directives_take_the_sites_options():
    out = sasl_directives(
        {
            "path": "inet:10.0.0.5:12345",
            "security_options": "noanonymous, noplaintext, noactive",
            "tls_security_options": "noanonymous, noactive",
        }
    )
    assert out["smtpd_sasl_path"] == "inet:10.0.0.5:12345"
    assert out["smtpd_sasl_security_options"] == "noanonymous, noplaintext, noactive"
    assert out["smtpd_sasl_tls_security_options"] == "noanonymous, noactive"


def test_sasl_directives_empty_options_fall_back_to_the_guide():
    out = sasl_directives({"path": "private/auth", "security_options": "", "tls_security_options": None})
    assert out["smtpd_sasl_security_options"] == "noanonymous, noplaintext"
    assert out["smtpd_sasl_tls_security_options"] == "noanonymous"


def test_sasl_directives_keep_an_unknown_path_in_place():
    path = Unknown()
    assert sasl_directives({"path": path})["smtpd_sasl_path"] is path


# -- tls_directives --------------------------------------------------------------------


def test_tls_directives_defaults():
    assert tls_directives(GOOD_TLS) == {
        "smtpd_tls_cert_file": "/etc/postfix/tls/secure-postfix.pem",
        "smtpd_tls_key_file": "/etc/postfix/tls/secure-postfix.pem",
        "smtpd_tls_security_level": "may",
        "smtpd_tls_auth_only": "yes",
        "smtpd_tls_protocols": ">=TLSv1.2",
        "smtpd_tls_mandatory_protocols": ">=TLSv1.2",
        "smtp_tls_security_level": "may",
        **POLICY_DEFAULTS,
    }


@pytest.mark.parametrize("level", ["may", "encrypt"])
def test_tls_auth_only_is_always_yes(level):
    out = tls_directives({**GOOD_TLS, "security_level": level, "public_mx": False})
    assert out["smtpd_tls_auth_only"] == "yes"
    assert out["smtpd_tls_security_level"] == level
    # The outbound client stays opportunistic whatever the server requires.
    assert out["smtp_tls_security_level"] == "may"


def test_tls_protocols_apply_to_both_protocol_directives():
    out = tls_directives({**GOOD_TLS, "protocols": ">=TLSv1.3"})
    assert out["smtpd_tls_protocols"] == ">=TLSv1.3"
    assert out["smtpd_tls_mandatory_protocols"] == ">=TLSv1.3"


def test_tls_directives_never_embed_the_certificate():
    out = tls_directives(GOOD_TLS)
    assert all("BEGIN" not in v for v in out.values())


# -- sasl.path -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "private/auth",
        "private/dovecot-auth",
        "auth",
        "inet:10.0.0.5:12345",
        "inet:auth.example.com:12345",
        "inet:[fd00::5]:12345",
        "inet:127.0.0.1:1",
        "inet:127.0.0.1:65535",
    ],
)
def test_sasl_path_accepted(path):
    assert features.sasl_path_problems(path) == []


def test_absolute_sasl_path_refused_because_of_the_chroot():
    problems = features.sasl_path_problems("/var/spool/postfix/private/auth")
    assert len(problems) == 1
    assert problems[0].field == "sasl.path"
    assert "is absolute" in problems[0].message
    assert "chroot" in problems[0].message
    assert "private/auth" in problems[0].message


@pytest.mark.parametrize(
    "path",
    [
        "inet:10.0.0.5",
        "inet:10.0.0.5:",
        "inet::12345",
        "inet:10.0.0.5:0",
        "inet:10.0.0.5:65536",
        "inet:10.0.0.5:123456",
        "inet:10.0.0.5:port",
        "inet:[fd00::5:12345",
        "inet:[zz]:12345",
        "inet:fd00::5:12345",
        "inet:10.0.0.5:12345 ",
    ],
)
def test_malformed_inet_sasl_path_refused(path):
    assert features.sasl_path_problems(path) == [Problem("sasl.path", f"{path!r} is not inet:ADDRESS:PORT")]


@pytest.mark.parametrize("path", ["unix:private/auth", "private//auth", "private/auth/", "private auth", ""])
def test_malformed_relative_sasl_path_refused(path):
    assert features.sasl_path_problems(path) == [
        Problem("sasl.path", f"{path!r} is not a socket path inside the queue directory (e.g. private/auth)")
    ]


def test_sasl_path_leaving_the_queue_directory_refused():
    problems = features.sasl_path_problems("../../run/dovecot/auth-client")
    assert [p.field for p in problems] == ["sasl.path"]


# -- sasl_problems ---------------------------------------------------------------------


def test_sasl_with_tls_and_good_path_has_no_problems():
    assert sasl_problems({"path": "private/auth"}, GOOD_TLS, is_unknown) == []


def test_sasl_without_tls_refused():
    problems = sasl_problems({"path": "private/auth"}, None, is_unknown)
    assert [p.field for p in problems] == ["sasl"]
    assert problems[0].message.startswith("needs tls")


def test_sasl_without_tls_and_with_bad_path_reports_both():
    problems = sasl_problems({"path": "/private/auth"}, {}, is_unknown)
    assert [p.field for p in problems] == ["sasl", "sasl.path"]


@pytest.mark.parametrize("sasl", [{}, {"path": None}, {"path": ""}])
def test_sasl_path_required(sasl):
    assert texts(sasl_problems(sasl, GOOD_TLS, is_unknown)) == ["sasl.path: is required (DovecotAuthService.sasl_path)"]


def test_unknown_sasl_path_is_not_checked_at_preview():
    assert sasl_problems({"path": Unknown()}, GOOD_TLS, is_unknown) == []


def test_security_options_must_keep_noanonymous():
    problems = sasl_problems({"path": "private/auth", "security_options": "noplaintext"}, GOOD_TLS, is_unknown)
    assert texts(problems) == ["sasl.security_options: must include noanonymous"]


def test_unknown_security_options_are_not_checked():
    sasl = {"path": "private/auth", "security_options": Unknown()}
    assert sasl_problems(sasl, GOOD_TLS, is_unknown) == []


# -- tls_problems ----------------------------------------------------------------------


def test_tls_defaults_have_no_problems():
    assert tls_problems(GOOD_TLS) == []


def test_tls_needs_a_certificate():
    assert texts(tls_problems({})) == [
        "tls.cert_pem: give exactly one of cert_pem (uploaded from the controller) or host_cert_file (a file that "
        "already lives on the host, such as an ACME client's fullchain.pem)"
    ]


@pytest.mark.parametrize("level", ["none", "dane", "verify", "MAY"])
def test_tls_security_level_must_be_may_or_encrypt(level):
    problems = tls_problems({**GOOD_TLS, "security_level": level})
    assert problems == [Problem("tls.security_level", f"must be one of may, encrypt, got {level!r}")]


def test_encrypt_refused_on_a_public_mx():
    for tls in (
        {**GOOD_TLS, "security_level": "encrypt"},
        {**GOOD_TLS, "security_level": "encrypt", "public_mx": True},
    ):
        problems = tls_problems(tls)
        assert [p.field for p in problems] == ["tls.security_level"]
        assert "RFC 3207" in problems[0].message
        assert "public_mx: false" in problems[0].message


def test_encrypt_allowed_when_not_a_public_mx():
    assert tls_problems({**GOOD_TLS, "security_level": "encrypt", "public_mx": False}) == []


@pytest.mark.parametrize(
    "protocols",
    [
        ">=TLSv1.2",
        ">=TLSv1.3",
        "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1",
        "!SSLv2,!SSLv3,!TLSv1,!TLSv1.1",
        "!SSLv2 !SSLv3 !TLSv1 !TLSv1.1",
        "",
    ],
)
def test_protocols_at_least_tls12_accepted(protocols):
    assert tls_problems({**GOOD_TLS, "protocols": protocols}) == []


@pytest.mark.parametrize("protocols", [">=TLSv1", ">=TLSv1.1", "TLSv1, TLSv1.1, TLSv1.2", "TLSv1", "TLSv1.1"])
def test_protocols_older_than_tls12_refused(protocols):
    assert tls_problems({**GOOD_TLS, "protocols": protocols}) == [
        Problem(
            "tls.protocols",
            f"{protocols!r} is not a TLS 1.2+ policy; use >=TLSv1.2, >=TLSv1.3, or exclusions that include "
            "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1",
        )
    ]


@pytest.mark.parametrize(
    "protocols",
    [
        "!SSLv2, !SSLv3",  # the old Debian default: TLSv1 and TLSv1.1 stay enabled
        ">=TLSv1, !SSLv2",
        ">=SSLv3",
        "SSLv3",
        "<=TLSv1.3",  # an upper bound only: no minimum at all
    ],
)
def test_protocols_allowing_old_tls_refused(protocols):
    assert [p.field for p in tls_problems({**GOOD_TLS, "protocols": protocols})] == ["tls.protocols"]


def test_bare_tls12_refused():
    assert [p.field for p in tls_problems({**GOOD_TLS, "protocols": "TLSv1.2"})] == ["tls.protocols"]


# -- overlapping_directives ------------------------------------------------------------


def test_directives_owned_by_sasl_and_tls_are_refused():
    directives = {"smtpd_tls_auth_only": "no", "smtpd_sasl_type": "cyrus", "smtpd_banner": "$myhostname ESMTP"}
    problems = features.overlapping_directives(directives, {"path": "private/auth"}, GOOD_TLS)
    assert problems == [
        Problem("directives.smtpd_tls_auth_only", "is set by the sasl/tls settings; change it there"),
        Problem("directives.smtpd_sasl_type", "is set by the sasl/tls settings; change it there"),
    ]


def test_directives_overlap_only_with_blocks_in_use():
    directives = {"smtpd_tls_security_level": "encrypt", "smtpd_sasl_auth_enable": "yes"}
    assert features.overlapping_directives(directives, None, None) == []
    assert [p.field for p in features.overlapping_directives(directives, None, GOOD_TLS)] == [
        "directives.smtpd_tls_security_level"
    ]
    assert [p.field for p in features.overlapping_directives(directives, {"path": "private/auth"}, None)] == [
        "directives.smtpd_sasl_auth_enable"
    ]


def test_every_generated_directive_is_refused_under_directives():
    """Whatever the sasl and tls blocks write, a `directives` entry may not also set: it would be overwritten."""
    sasl = {"path": "private/auth"}
    generated = {**sasl_directives(sasl), **tls_directives(GOOD_TLS)}
    assert len(generated) >= 10
    refused = features.overlapping_directives(dict.fromkeys(generated, "x"), sasl, GOOD_TLS)
    assert sorted(p.field for p in refused) == sorted(f"directives.{name}" for name in generated)


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        (features.RELAY_RESTRICTIONS_DEFAULT, False),
        ("permit_mynetworks, reject", False),
        ("permit_sasl_authenticated,reject_unauth_destination", False),
        ("permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination", True),
        ("permit_mynetworks, permit", True),
        ("", True),
        (7, True),
    ],
)
def test_relay_restrictions_must_refuse_relaying_for_good(text, refused):
    assert bool(features.relay_problems(text)) is refused


def test_relay_restrictions_are_managed_by_default_and_owned_by_their_setting():
    props = {"limits": {}, "directives": {}, "relay_restrictions": features.RELAY_RESTRICTIONS_DEFAULT}
    assert fold_main_cf(props)["smtpd_relay_restrictions"] == features.RELAY_RESTRICTIONS_DEFAULT
    assert "smtpd_relay_restrictions" not in fold_main_cf({"relay_restrictions": None})
    overlap = features.overlapping_directives({"smtpd_relay_restrictions": "permit"}, None, None, "x")
    assert [p.field for p in overlap] == ["directives.smtpd_relay_restrictions"]
