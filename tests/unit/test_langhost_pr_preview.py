"""The pull-request comment rendered from `pulumi preview --json` (the shape the pinned CLI writes)."""

from __future__ import annotations

from tests.unit.test_compliance import DEBIAN_HOST, GUIDE_MAIN_CF
from toolchain.stackctl import pr_preview

SITE_A = "urn:pulumi:prod::secure-postfix::secure-postfix:index:MailSite::a"
POSTFIX = "secure-postfix:index:MailSite$pulumi-python:dynamic/postfix:PostfixConfig"


def _state(name: str, inputs: dict) -> dict:
    return {"urn": f"urn:pulumi:prod::secure-postfix::{POSTFIX}::{name}", "parent": SITE_A, "inputs": inputs}


def _update(old: dict, new: dict, detailed: dict | None) -> dict:
    return {
        "op": "update",
        "urn": f"urn:pulumi:prod::secure-postfix::{POSTFIX}::a-postfix",
        "oldState": _state("a-postfix", old),
        "newState": _state("a-postfix", new),
        "detailedDiff": detailed,
    }


BASE = {"__provider": "gASV...", "host": "192.0.2.25", "private_key": "[secret]"}


def test_one_line_per_changed_directive_from_the_engines_detailed_diff():
    verdict = {"guide-8.8-message_size_limit": "pass: message_size_limit = 10240000"}
    step = _update(
        {**BASE, "main_cf": {"message_size_limit": "10240000"}, "tls_key_pem": "[secret]", "compliance": verdict},
        {**BASE, "main_cf": {"message_size_limit": "20480000"}, "tls_key_pem": "[secret]", "compliance": {}},
        {
            "main_cf.message_size_limit": {"kind": "update"},
            "tls_key_pem": {"kind": "update"},
            # The provider's verdict on the directive changes along with it: not a line of its own.
            'compliance["guide-8.8-message_size_limit"]': {"kind": "update"},
        },
    )
    stack = {"op": "same", "urn": "urn:pulumi:prod::secure-postfix::pulumi:pulumi:Stack::secure-postfix-prod"}
    comment = pr_preview.render("prod", {"steps": [stack, step], "changeSummary": {"same": 2, "update": 1}})
    assert comment.splitlines()[:5] == [
        pr_preview.MARKER,
        "### `pulumi preview` of stack `prod`: 1 to update",
        "",
        "- site `a`, host `192.0.2.25` (`a-postfix`): `message_size_limit` `10240000` → `20480000`",
        "- site `a`, host `192.0.2.25` (`a-postfix`): `tls_key_pem` `[secret]` → `[secret]`",
    ]


def test_added_and_dropped_directives_say_so():
    step = _update(
        {**BASE, "main_cf": {"queue_minfree": "0"}},
        {**BASE, "main_cf": {"message_size_limit": "2048"}},
        {"main_cf.message_size_limit": {"kind": "add"}, "main_cf.queue_minfree": {"kind": "delete"}},
    )
    lines = [c.line() for c in pr_preview.changes({"steps": [step]})]
    assert lines == [
        "- site `a`, host `192.0.2.25` (`a-postfix`): `message_size_limit` set to `2048`",
        "- site `a`, host `192.0.2.25` (`a-postfix`): `queue_minfree` `0` → back to the host's original",
    ]


def test_a_create_lists_every_input_but_the_engines_own_and_keeps_secrets_hidden():
    secret = {pr_preview._SECRET_SIG: "1b47061264138c4ac30d75fd1eb44270", "value": "-----BEGIN KEY-----\nabc"}
    step = {"op": "create", "urn": f"urn:pulumi:prod::secure-postfix::{POSTFIX}::a-postfix"}
    step["newState"] = _state("a-postfix", {**BASE, "main_cf": {"message_size_limit": "2048"}, "tls_key_pem": secret})
    names = {c.name: c.new for c in pr_preview.changes({"steps": [step]})}
    assert names == {
        "host": "192.0.2.25",
        "private_key": "[secret]",
        "message_size_limit": "2048",
        "tls_key_pem": "[secret]",
    }


def test_multi_line_values_show_their_first_line():
    assert pr_preview._text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n") == (
        "-----BEGIN CERTIFICATE----- …"
    )


def test_nothing_to_change_says_so():
    comment = pr_preview.render("prod", {"steps": [], "changeSummary": {"same": 5}})
    assert "no changes" in comment and "Every managed directive is as the stack asks." in comment


def test_engine_paths_with_quoted_keys_and_indexes_are_read_whole():
    assert pr_preview.path_parts('compliance["guide-8.8-x"]') == ["compliance", "guide-8.8-x"]
    assert pr_preview.path_parts("main_cf.message_size_limit") == ["main_cf", "message_size_limit"]
    assert pr_preview.path_parts("a[0].b") == ["a", 0, "b"]
    step = _update({**BASE, "tags": ["x"]}, {**BASE, "tags": ["y"]}, {"tags[0]": {"kind": "update"}})
    assert [c.line() for c in pr_preview.changes({"steps": [step]})] == [
        "- site `a`, host `192.0.2.25` (`a-postfix`): `tags.0` `x` → `y`"
    ]


def test_the_comment_shows_a_weakening_change_as_a_planned_fail_beside_the_current_pass():
    guide = {**GUIDE_MAIN_CF, "smtpd_client_connection_rate_limit": "30"}
    old = {**BASE, "host_name": "mx", "main_cf": guide}
    step = _update(old, {**old, "main_cf": {**guide, "smtpd_client_connection_rate_limit": "0"}}, None)
    step["oldState"]["outputs"] = {**old, "originals": {}, "host_values": DEBIAN_HOST}
    comment = pr_preview.render(
        "prod", {"steps": [step]}, {"guide-8.8-smtpd_client_connection_rate_limit": "mandatory"}
    )
    verdicts = comment.split("#### Compliance as planned", 1)[1]
    assert "- host `mx (192.0.2.25)` (`a-postfix`): " in verdicts and "1 fail" in verdicts
    assert (
        "| `mx (192.0.2.25)` | `guide-8.8-smtpd_client_connection_rate_limit` | mandatory | **fail**: "
        "smtpd_client_connection_rate_limit = 0: 0 means no limit | pass: smtpd_client_connection_rate_limit = 30 |"
    ) in verdicts, verdicts


def test_the_comment_judges_a_dropped_block_on_the_original_the_host_gets_back():
    old = {**BASE, "host_name": "mx", "main_cf": GUIDE_MAIN_CF}
    new = {k: v for k, v in GUIDE_MAIN_CF.items() if not k.startswith("smtpd_sasl")}
    step = _update(old, {**old, "main_cf": new}, None)
    originals = {"smtpd_sasl_security_options": "smtpd_sasl_security_options = noanonymous"}
    step["oldState"]["outputs"] = {**old, "originals": originals}
    comment = pr_preview.render("prod", {"steps": [step]})
    assert "| `mx (192.0.2.25)` | `guide-8.8.3-smtpd_sasl_security_options` | advisory | **fail**: " in comment, comment
    assert "lacks noplaintext" in comment


def test_a_new_certificate_is_its_one_line_summary_not_its_pem():
    """The PEM's own diff is hidden from `pulumi preview --diff`; the comment, like it, shows the summary alone."""
    old_pem, new_pem = "-----BEGIN CERTIFICATE-----\nAAA\n", "-----BEGIN CERTIFICATE-----\nBBB\n"
    old_line = "expires 2027-01-03 (DNS:mx.example.org; sha256 27:5A:AE:A7)"
    new_line = "expires 2027-03-04 (DNS:mx.example.org; sha256 E6:2E:9A:BF)"
    step = _update(
        {**BASE, "tls_cert_pem": old_pem, "tls_certificate": old_line},
        {**BASE, "tls_cert_pem": new_pem, "tls_certificate": new_line},
        {"tls_cert_pem": {"kind": "update"}, "tls_certificate": {"kind": "update"}},
    )
    assert [c.line() for c in pr_preview.changes({"steps": [step]})] == [
        f"- site `a`, host `192.0.2.25` (`a-postfix`): `tls_certificate` `{old_line}` → `{new_line}`"
    ]
