"""PostfixConfig on each supported Postfix: what it writes, refuses and reads back, from recorded facts.

Postfix 3.5 (Debian 11: 3.5.25), 3.7 (Debian 12: 3.7.11) and 3.10 (Debian 13: 3.10.13). The facts are what each
version printed for the facts script (tests/fixtures/facts/); the host is test_provider_steps' RecordingHost. Each
refusal names the host, the version and the setting: at preview from the version the last up or refresh stored
(`diff` sees the stored outputs), at apply from the host's facts, before any change.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from secure_postfix import postfix_config as pc
from secure_postfix.core import host_output, mastercf, postfix_output
from secure_postfix.core import postfix_features as features
from secure_postfix.core import postfix_rules as rules
from secure_postfix.provider import ApplyError
from tests.tls_files import make_pair
from tests.unit.test_provider_steps import OWNER, RecordingHost, RecordingSession

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "facts"
EXCLUSIONS = "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"


def postfix_facts(name: str) -> host_output.PostfixFacts:
    return host_output.parse_postfix_facts(json.loads((FIXTURES / name).read_text())["output"])


POSTFIX_35 = postfix_facts("postfix-3.5-facts.json")
POSTFIX_37 = postfix_facts("postfix-3.7-facts.json")
POSTFIX_310 = postfix_facts("postfix-3.10-facts.json")


# -- Postfix: TLS protocols per version -----------------------------------------------------

TLS_BLOCK = features.tls_directives(
    {"security_level": "may", "protocols": ">=TLSv1.2", "public_mx": True, "cert_pem": "x"}
)


@pytest.mark.parametrize(
    ("version", "written"),
    [("3.5.25", EXCLUSIONS), ("3.5.9", EXCLUSIONS), ("3.6.0", ">=TLSv1.2"), ("3.7.11", ">=TLSv1.2"),
     ("3.10.13", ">=TLSv1.2"), ("", ">=TLSv1.2")],
)  # fmt: skip
def test_the_tls_block_s_protocols_as_each_version_is_given_them(version, written):
    rendered = features.for_version(TLS_BLOCK, version, tls_block=True)
    assert rendered["smtpd_tls_protocols"] == rendered["smtpd_tls_mandatory_protocols"] == written
    assert {k: v for k, v in rendered.items() if not k.endswith("_protocols")} == {
        k: v for k, v in TLS_BLOCK.items() if not k.endswith("_protocols")
    }
    assert rules.version_problems(rendered, version) == []


def test_tls_1_3_only_is_written_as_every_older_protocol_excluded_before_3_6():
    block = {**TLS_BLOCK, "smtpd_tls_protocols": ">=TLSv1.3", "smtpd_tls_mandatory_protocols": ">=TLSv1.3"}
    rendered = features.for_version(block, "3.5.25", tls_block=True)
    assert rendered["smtpd_tls_protocols"] == "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1, !TLSv1.2"
    assert features.protocols_at_least_tls12(rendered["smtpd_tls_protocols"])


def test_the_user_s_own_protocol_directive_is_written_as_written_and_refused_before_3_6():
    directives = {"lmtp_tls_protocols": ">=TLSv1.2", "lmtp_tls_mandatory_protocols": "<=TLSv1.3"}
    assert features.for_version(directives, "3.5.25", tls_block=True) == directives
    assert [str(p) for p in rules.version_problems(directives, "3.5.25")] == [
        "directives.lmtp_tls_protocols: '>=TLSv1.2' is Postfix 3.6's syntax; Postfix 3.5.25 does not know it (its "
        f"smtpd would offer no TLS at all): write '{EXCLUSIONS}'",
        "directives.lmtp_tls_mandatory_protocols: '<=TLSv1.3' is Postfix 3.6's syntax; Postfix 3.5.25 does not know "
        "it (its smtpd would offer no TLS at all): list the protocols to exclude, such as !SSLv2, !SSLv3",
    ]
    assert rules.version_problems(directives, "3.6.0") == []


def test_a_services_option_with_the_ge_syntax_is_refused_before_3_6_by_service():
    services = {"submission": mastercf.Service("submission", options={"smtpd_tls_protocols": ">=TLSv1.3"})}
    assert [str(p) for p in mastercf.version_problems(services, "3.5.25")] == [
        "services.submission.options.smtpd_tls_protocols: '>=TLSv1.3' is Postfix 3.6's syntax; Postfix 3.5.25 does "
        "not know it (its smtpd would offer no TLS at all): write '!SSLv2, !SSLv3, !TLSv1, !TLSv1.1, !TLSv1.2'"
    ]
    assert mastercf.version_problems(services, "3.7.11") == []


@pytest.mark.parametrize(
    ("value", "exclusions"),
    [(">=TLSv1", "!SSLv2, !SSLv3"), (">=TLSv1.2", EXCLUSIONS), (" >=TLSv1.3 ", EXCLUSIONS + ", !TLSv1.2"),
     (">=SSLv2", None), (">=TLSv2", None), (">=TLSv1.2 <=TLSv1.3", None), ("!SSLv2", None)],
)  # fmt: skip
def test_exclusions_for_a_ge_value(value, exclusions):
    assert rules.exclusions_for(value) == exclusions


def test_a_refresh_shows_the_declared_value_where_the_host_holds_its_rendering():
    declared = {"smtpd_tls_protocols": ">=TLSv1.2", "message_size_limit": "10240000"}
    live = {"smtpd_tls_protocols": EXCLUSIONS, "message_size_limit": "10240000"}
    assert features.as_declared(live, declared, "3.5.25", tls_block=True) == declared
    # Anything else is drift, shown as the host has it; so are the exclusions on a host that reads >=.
    other = {**live, "smtpd_tls_protocols": "!SSLv2, !SSLv3"}
    assert features.as_declared(other, declared, "3.5.25", tls_block=True) == other
    assert features.as_declared(live, declared, "3.7.11", tls_block=True) == live
    assert features.as_declared(live, declared, "3.5.25", tls_block=False) == live


# -- Postfix: the provider on 3.5, 3.7 and 3.10 ---------------------------------------------


@pytest.fixture(scope="module")
def pair() -> tuple[str, str]:
    return make_pair("mx.testbed.invalid", days=30)


def tls_props(pair, **main_cf: str) -> dict:
    cert, _ = pair
    return {"host": "10.231.17.10", "main_cf": {**TLS_BLOCK, **main_cf}, "tls_cert_pem": cert}


def postfix_apply(monkeypatch, facts, props) -> tuple[dict, list[tuple]]:
    calls: list[tuple] = []
    host = RecordingHost(calls, facts=facts)
    # main.cf is still the file the facts read.
    host.digests["/etc/postfix/main.cf"] = facts.main_cf_sha256
    monkeypatch.setattr(pc, "PostfixHost", host.on)
    outputs = pc.PostfixConfigProvider().apply(RecordingSession(calls), OWNER, props, None)
    return outputs, calls


@pytest.mark.parametrize(
    ("facts", "written"), [(POSTFIX_35, EXCLUSIONS), (POSTFIX_37, ">=TLSv1.2"), (POSTFIX_310, ">=TLSv1.2")]
)
def test_postfix_apply_writes_the_protocols_the_host_s_version_reads_and_keeps_the_stack_s(
    monkeypatch, pair, facts, written
):
    outputs, calls = postfix_apply(monkeypatch, facts, tls_props(pair))
    staged = next(c[1] for c in calls if c[0] == "staged_check_report")
    swapped = next(c[1] for c in calls if c[0] == "swap_in")
    assert staged == swapped
    assert f"\nsmtpd_tls_protocols = {written}\n" in swapped
    assert f"\nsmtpd_tls_mandatory_protocols = {written}\n" in swapped
    # State keeps what the stack says; a refresh reads the host's exclusions back as that.
    assert outputs["main_cf"]["smtpd_tls_protocols"] == ">=TLSv1.2"
    assert outputs["postfix_version"] == facts.version


def test_postfix_apply_refuses_a_directive_3_5_cannot_read_before_any_change(monkeypatch, pair):
    calls: list[tuple] = []
    monkeypatch.setattr(pc, "PostfixHost", RecordingHost(calls, facts=POSTFIX_35).on)
    with pytest.raises(ApplyError) as refused:
        pc.PostfixConfigProvider().apply(
            RecordingSession(calls), OWNER, tls_props(pair, lmtp_tls_protocols=">=TLSv1.2"), None
        )
    assert str(refused.value) == (
        "mx (10.231.17.10): directives.lmtp_tls_protocols: '>=TLSv1.2' is Postfix 3.6's syntax; Postfix 3.5.25 does "
        f"not know it (its smtpd would offer no TLS at all): write '{EXCLUSIONS}'. Nothing was changed."
    )
    assert [c[0] for c in calls] == ["facts", "drop_backups"]


def test_postfix_apply_names_the_host_s_version_for_a_parameter_it_does_not_know(monkeypatch, pair):
    calls: list[tuple] = []
    monkeypatch.setattr(pc, "PostfixHost", RecordingHost(calls, facts=POSTFIX_37).on)
    with pytest.raises(ApplyError, match=r"smtpd_hide_client_session: is not a parameter that Postfix 3\.7\.11 knows"):
        pc.PostfixConfigProvider().apply(
            RecordingSession(calls), OWNER, tls_props(pair, smtpd_hide_client_session="yes"), None
        )


@pytest.mark.parametrize(
    ("facts", "live", "shown"),
    [
        (POSTFIX_35, EXCLUSIONS, ">=TLSv1.2"),
        (POSTFIX_35, "!SSLv2, !SSLv3", "!SSLv2, !SSLv3"),
        (POSTFIX_37, ">=TLSv1.2", ">=TLSv1.2"),
        (POSTFIX_37, EXCLUSIONS, EXCLUSIONS),
    ],
)
def test_postfix_refresh_reads_the_rendering_back_as_the_stack_s_value_and_stores_the_version(
    monkeypatch, pair, facts, live, shown
):
    main_cf = facts.main_cf + f"smtpd_tls_protocols = {live}\n"
    calls: list[tuple] = []
    host = RecordingHost(calls, facts=dataclasses.replace(facts, main_cf=main_cf))
    monkeypatch.setattr(pc, "PostfixHost", host.on)
    stored = {**tls_props(pair), "postfix_version": "3.0.0"}
    refreshed = pc.PostfixConfigProvider().refresh(RecordingSession(calls), OWNER, stored)
    assert refreshed["main_cf"]["smtpd_tls_protocols"] == shown
    assert refreshed["postfix_version"] == facts.version


def postfix_news(pair, **main_cf: str) -> dict:
    return {**tls_props(pair, **main_cf), "private_key": "k"}


@pytest.mark.parametrize(
    ("version", "main_cf", "message"),
    [
        (
            "3.5.25",
            {"lmtp_tls_protocols": ">=TLSv1.2"},
            "10.231.17.10: directives.lmtp_tls_protocols: '>=TLSv1.2' is Postfix 3.6's syntax; Postfix 3.5.25 does "
            "not know it",
        ),
        (
            "3.7.11",
            {"smtpd_hide_client_session": "yes"},
            "10.231.17.10: directives.smtpd_hide_client_session: is not a parameter that Postfix 3.7.11 knows "
            "(postconf -d of 3.7 has no smtpd_hide_client_session; Postfix 3.10 has it)",
        ),
        (
            "3.5.25",
            {"respectful_logging": "yes"},
            "10.231.17.10: directives.respectful_logging: is not a parameter that Postfix 3.5.25 knows (postconf -d "
            "of 3.5 has no respectful_logging; Postfix 3.7 and 3.10 have it)",
        ),
        (
            "3.10.13",
            {"postscreen_blacklist_action": "drop"},
            "10.231.17.10: directives.postscreen_blacklist_action: is not a parameter that Postfix 3.10.13 knows "
            "(postconf -d of 3.10 has no postscreen_blacklist_action; Postfix 3.5 has it)",
        ),
    ],
)
def test_postfix_preview_refuses_from_the_version_the_last_up_or_refresh_stored(pair, version, main_cf, message):
    news = postfix_news(pair, **main_cf)
    olds = {**postfix_news(pair), "postfix_version": version}
    with pytest.raises(ApplyError) as at_preview:
        pc.PostfixConfigProvider().diff(OWNER, olds, news)
    assert str(at_preview.value).startswith(message)
    assert str(at_preview.value).endswith("`pulumi refresh` reads it again). Nothing was changed.")


@pytest.mark.parametrize(
    ("version", "main_cf"),
    [
        ("3.5.25", {}),  # the tls block's >=TLSv1.2 is written as exclusions there
        ("3.10.13", {"smtpd_hide_client_session": "yes"}),
        ("3.9.1", {"smtpd_hide_client_session": "yes"}),  # no list shipped for 3.9: the host's judges at apply
        ("", {"lmtp_tls_protocols": ">=TLSv1.2"}),  # not known yet (a create)
    ],
)
def test_postfix_preview_lets_through_what_the_stored_version_can_read(pair, version, main_cf):
    olds = {**postfix_news(pair), **({"postfix_version": version} if version else {})}
    pc.PostfixConfigProvider().diff(OWNER, olds, postfix_news(pair, **main_cf))


def test_a_check_without_a_host_accepts_a_name_any_supported_postfix_knows():
    assert rules.check_directives({"smtpd_hide_client_session": "yes"}) == []
    assert rules.check_directives({"postscreen_blacklist_action": "drop"}) == []
    assert [str(p) for p in rules.check_directives({"smtpd_bogus_parameter": "1"})] == [
        "smtpd_bogus_parameter: is not a parameter that Postfix knows (postconf -d); check the spelling"
    ]


@pytest.mark.parametrize("version", ["3.5", "3.10"])
def test_the_staged_check_of_each_version_accepts_main_cf_as_an_up_writes_it_there(version):
    """Postfix's own check of main.cf with the sasl and tls blocks rendered for it: no error, no warning of its own.
    With that main.cf and Dovecot's file for the same Debian in place, the project's SMTP probe had its STARTTLS
    answered with the deployed certificate over TLS 1.2 or newer."""
    check = postfix_output.parse_staged_check(
        json.loads((FIXTURES / f"postfix-{version}-staged-check-tls.json").read_text())["output"]
    )
    assert (check.staged.rc, check.live.rc) == (0, 0)
    assert postfix_output.rejection(check) is None


SERVICES_NEWS = {
    "host": "10.231.17.10",
    "port": 22,
    "user": "root",
    "private_key": "k",
    "tls_cert_pem": "CERT",
    "services": {"submission": {"options": {"smtpd_tls_protocols": ">=TLSv1.3"}}},
}


def test_services_preview_refuses_an_option_the_stored_version_cannot_read():
    from secure_postfix.postfix_services import PostfixServicesProvider

    olds = {**SERVICES_NEWS, "services": {"submission": {}}, "postfix_version": "3.5.25"}
    with pytest.raises(ApplyError) as at_preview:
        PostfixServicesProvider().diff(OWNER, olds, SERVICES_NEWS)
    assert str(at_preview.value).startswith(
        "10.231.17.10: services.submission.options.smtpd_tls_protocols: '>=TLSv1.3' is Postfix 3.6's syntax; "
        "Postfix 3.5.25 does not know it"
    )
    assert str(at_preview.value).endswith("Nothing was changed.")


@pytest.mark.parametrize("stored", [{"postfix_version": "3.7.11"}, {"postfix_version": "3.10.13"}, {}])
def test_services_preview_lets_through_what_the_stored_version_can_read(stored):
    from secure_postfix.postfix_services import PostfixServicesProvider

    olds = {**SERVICES_NEWS, "services": {"submission": {}}, **stored}
    PostfixServicesProvider().diff(OWNER, olds, SERVICES_NEWS)
