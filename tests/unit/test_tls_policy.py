"""The TLS policy's levels as main.cf values, the suites OpenSSL makes of them, and their input rules."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from secure_postfix.core import postfix_features as features
from secure_postfix.core import tls_policy
from secure_postfix.core.tls_policy import LEVELS

# The main.cf lines of the default policy (intermediate where passwords travel, opportunistic between servers),
# besides the protocols, which the tls block's `protocols` also sets.
POLICY_DEFAULTS = {
    "smtpd_tls_mandatory_ciphers": "high",
    "smtpd_tls_mandatory_exclude_ciphers": "aNULL, eNULL, EXPORT, LOW, DES, 3DES, RC4, MD5, IDEA, SEED, PSK, SRP, "
    "kRSA, kDHE, kDH, kECDH, SHA1, SHA256, SHA384, CAMELLIA, ARIA, AESCCM, aDSS",
    "smtpd_tls_ciphers": "medium",
    "smtpd_tls_exclude_ciphers": "aNULL, eNULL, EXPORT, LOW, DES, 3DES, RC4, MD5, IDEA, SEED, PSK, SRP",
    "tls_eecdh_auto_curves": "X25519 prime256v1 secp384r1",
    "smtp_tls_protocols": ">=TLSv1.2",
    "smtp_tls_mandatory_protocols": ">=TLSv1.2",
    "smtp_tls_ciphers": "medium",
    "smtp_tls_exclude_ciphers": "eNULL, EXPORT, LOW, DES, 3DES, RC4, MD5, IDEA, SEED, PSK, SRP",
    "smtp_tls_mandatory_ciphers": "medium",
    "smtp_tls_mandatory_exclude_ciphers": "aNULL, eNULL, EXPORT, LOW, DES, 3DES, RC4, MD5, IDEA, SEED, PSK, SRP",
}
# `postconf -d` of each series: the grades' lists the exclusions are appended to (3.10 ships its own).
GRADE_LISTS = {
    "3.5/3.7": {
        "high": "aNULL:-aNULL:HIGH:@STRENGTH",
        "medium": "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH",
    },
    "3.10": {
        "high": "aNULL:-aNULL:HIGH:!SEED:!IDEA:!3DES:!RC2:!RC4:!RC5:!kDH:!kECDH:!aDSS:!MD5:@STRENGTH",
        "medium": "aNULL:-aNULL:HIGH:MEDIUM:!SEED:!IDEA:!3DES:!RC2:!RC4:!RC5:!kDH:!kECDH:!aDSS:!MD5:+RC4:@STRENGTH",
    },
}
SSLYZE_PROFILE = (
    Path(__file__).resolve().parents[2]
    / ".cache/judges/lib/python3.11/site-packages/sslyze/mozilla_tls_profile/5.7.json"
)


def default_tls(**changes) -> dict:
    return {**features.TLS_DEFAULTS, "cert_pem": "x", **changes}


def suites(grade_list: str, exclusions: tuple[str, ...]) -> list[str]:
    """The TLS 1.2 suites OpenSSL makes of the cipher string Postfix builds (the machine's OpenSSL)."""
    text = subprocess.run(
        ["openssl", "ciphers", "-tls1_2", "-s", tls_policy.cipher_string(grade_list, exclusions)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return text.strip().split(":")


def test_the_default_policy_as_main_cf():
    rendered = features.tls_directives(default_tls())
    assert {k: v for k, v in rendered.items() if k in tls_policy.POLICY_DIRECTIVES} == POLICY_DEFAULTS
    assert rendered["smtpd_tls_protocols"] == rendered["smtpd_tls_mandatory_protocols"] == ">=TLSv1.2"
    assert rendered["smtp_tls_security_level"] == "may"
    assert "smtp_tls_policy_maps" not in rendered


def test_settings_stored_before_the_policy_get_its_defaults():
    stored = {"security_level": "may", "protocols": ">=TLSv1.2", "public_mx": True, "cert_pem": "x"}
    assert features.tls_directives(stored) == features.tls_directives(default_tls())


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@pytest.mark.parametrize("series", GRADE_LISTS)
def test_intermediate_is_mozilla_s_intermediate_without_dhe(series):
    level = LEVELS["intermediate"]
    offered = suites(GRADE_LISTS[series][level.grade], level.exclusions)
    wanted = [s for s in tls_policy.MOZILLA_INTERMEDIATE_TLS12 if not s.startswith("DHE-")]
    assert sorted(offered) == sorted(wanted)


@pytest.mark.skipif(not SSLYZE_PROFILE.exists(), reason="sslyze's profiles come with scripts/setup.sh")
def test_the_intermediate_list_is_the_one_sslyze_judges_by():
    profile = json.loads(SSLYZE_PROFILE.read_text())["configurations"]["intermediate"]
    assert sorted(profile["ciphers"]["openssl"]) == sorted(tls_policy.MOZILLA_INTERMEDIATE_TLS12)
    assert set(tls_policy.CURVES.split()) == set(profile["tls_curves"])
    assert profile["tls_versions"] == ["TLSv1.2", "TLSv1.3"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@pytest.mark.parametrize("series", GRADE_LISTS)
def test_opportunistic_refuses_only_what_gives_no_protection_and_keeps_the_rest(series):
    level = LEVELS["opportunistic"]
    offered = suites(GRADE_LISTS[series][level.grade], level.exclusions)
    assert not [s for s in offered if s.startswith(("ADH", "AECDH")) or "NULL" in s or "RC4" in s or "DES" in s]
    # A peer with nothing but CBC or static RSA still gets TLS rather than plaintext.
    assert {"ECDHE-RSA-AES128-SHA", "AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"} <= set(offered)
    # The client at `may` keeps anonymous suites: it checks no certificate there, and refusing them means plaintext.
    assert "aNULL" not in level.opportunistic_client_exclusions
    assert set(level.opportunistic_client_exclusions) == set(level.exclusions) - {"aNULL"}


def test_modern_requires_tls_1_3_where_tls_is_required_and_leaves_port_25_alone():
    rendered = features.tls_directives(default_tls(policy="modern"))
    assert rendered["smtpd_tls_mandatory_protocols"] == ">=TLSv1.3"
    assert rendered["smtpd_tls_protocols"] == rendered["smtp_tls_protocols"] == ">=TLSv1.2"
    # Written as exclusions where Postfix has no >= (3.5), as the tls block's own protocols are.
    on_35 = features.for_version(rendered, "3.5.25", tls_block=True)
    assert on_35["smtpd_tls_mandatory_protocols"] == "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1, !TLSv1.2"
    assert on_35["smtp_tls_protocols"] == on_35["smtp_tls_mandatory_protocols"] == "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"


def test_the_mta_level_intermediate_puts_port_25_and_mail_out_on_mozilla_s_suites():
    rendered = features.tls_directives(default_tls(mta_policy="intermediate"))
    assert rendered["smtpd_tls_ciphers"] == rendered["smtp_tls_ciphers"] == "high"
    assert rendered["smtpd_tls_exclude_ciphers"] == POLICY_DEFAULTS["smtpd_tls_mandatory_exclude_ciphers"]


def test_destinations_become_one_texthash_table():
    destinations = {
        "example.com": "secure",
        ".partner.example": {"level": "verify", "match": ["mx.partner.example", ".partner.example"]},
        "[relay.example.net]:587": {"level": "encrypt"},
    }
    tls = default_tls(destinations=destinations)
    assert tls_policy.problems(tls) == []
    assert features.tls_directives(tls)["smtp_tls_policy_maps"] == (
        "texthash:/etc/postfix/tls/secure-postfix-tls-policy"
    )
    assert features.tls_policy_map(tls).splitlines()[1:] == [
        ".partner.example verify match=mx.partner.example:.partner.example",
        "[relay.example.net]:587 encrypt",
        "example.com secure",
    ]
    assert features.tls_policy_map(default_tls()) is None


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"policy": "opportunistic"}, "tls.policy", "must be one of intermediate, modern where passwords travel"),
        ({"policy": "old"}, "tls.policy", "got 'old'"),
        ({"mta_policy": "modern"}, "tls.mta_policy", "must be one of opportunistic, intermediate"),
        ({"outbound_security_level": "verify"}, "tls.outbound_security_level", "goes in tls.destinations"),
        ({"destinations": {"example.com": "may"}}, "tls.destinations.example.com", "must be one of encrypt, verify"),
        ({"destinations": {"Example.COM": "secure"}}, "tls.destinations.Example.COM", "in lower case"),
        ({"destinations": {"example.com; rm": "secure"}}, "tls.destinations.example.com; rm", "must be a domain"),
        (
            {"destinations": {"example.com": {"level": "encrypt", "match": "x"}}},
            "tls.destinations.example.com.match",
            "with verify or secure",
        ),
        (
            {"destinations": {"example.com": {"level": "secure", "match": ["a b"]}}},
            "tls.destinations.example.com.match",
            "one word each",
        ),
        ({"destinations": {"example.com": {"lvl": "secure"}}}, "tls.destinations.example.com", "{level, match}"),
        ({"destinations": ["example.com"]}, "tls.destinations", "must be an object"),
    ],
)
def test_a_level_or_destination_postfix_cannot_take_is_refused_by_name(changes, field, words):
    found = features.tls_problems(default_tls(**changes))
    assert [p.field for p in found] == [field], found
    assert words in found[0].message


def test_the_policy_s_directives_belong_to_the_tls_block():
    found = features.overlapping_directives({"smtpd_tls_mandatory_ciphers": "medium"}, None, {"cert_pem": "x"})
    assert [str(p) for p in found] == [
        "directives.smtpd_tls_mandatory_ciphers: is set by the sasl/tls settings; change it there"
    ]
