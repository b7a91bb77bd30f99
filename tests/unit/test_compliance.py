"""The compliance rules as data, judged on main.cf values (pure)."""

from __future__ import annotations

import pytest

from secure_postfix.core import compliance as c

GUIDE_MAIN_CF = {
    "message_size_limit": "10240000",
    "header_size_limit": "102400",
    "queue_minfree": "15360000",
    "default_process_limit": "100",
    "smtpd_client_connection_rate_limit": "30",
    "smtpd_client_message_rate_limit": "60",
    "anvil_rate_time_unit": "60s",
    "smtpd_client_event_limit_exceptions": "$mynetworks",
    "smtpd_sasl_auth_enable": "yes",
    "smtpd_sasl_type": "dovecot",
    "smtpd_sasl_path": "private/auth",
    "smtpd_sasl_security_options": "noanonymous, noplaintext",
    "smtpd_sasl_tls_security_options": "noanonymous",
    "smtpd_tls_security_level": "may",
    "smtpd_tls_cert_file": "/etc/postfix/tls/secure-postfix.crt",
    "smtpd_tls_key_file": "/etc/postfix/tls/secure-postfix.key",
}
# The host's own values apply and refresh read (Debian's main.cf sets mynetworks).
DEBIAN_HOST = {"mynetworks": "127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128", "myhostname": "mx.example.org"}


def by_id(findings):
    return {f.rule.id: f for f in findings}


def status(main_cf, rule_id, **kw):
    return by_id(c.judge(main_cf, **kw))[rule_id].status


class TestRuleData:
    def test_ids_are_unique_and_every_rule_cites_a_source(self):
        assert len(c.RULES_BY_ID) == len(c.RULES)
        assert all(r.source and r.title for r in c.RULES)

    def test_baseline_ids_are_the_published_ones(self):
        ids = set(c.RULES_BY_ID)
        assert {"RHEL-08-040290", "RHEL-09-252050", "CIS-RHEL9-2.1.21", "postfix_server_banner"} <= ids
        assert "V-257951" in c.RULES_BY_ID["RHEL-09-252050"].source
        assert "CCI-000366" in c.RULES_BY_ID["RHEL-08-040290"].source

    def test_every_rule_either_judges_or_says_why_not(self):
        for rule in c.RULES:
            assert (rule.judge is not None) != bool(rule.not_checked), rule.id
            assert rule.judge is None or rule.directives, rule.id


class TestGuide:
    def test_the_guides_settings_pass_every_guide_rule(self):
        findings = [f for f in c.judge(GUIDE_MAIN_CF, host=DEBIAN_HOST) if f.rule.id.startswith("guide-")]
        assert len(findings) == 12
        assert {f.status for f in findings} == {c.Status.PASS}, [(f.rule.id, f.value) for f in findings]

    def test_at_preview_mynetworks_is_the_hosts_so_the_exceptions_are_not_checked(self):
        finding = by_id(c.judge(GUIDE_MAIN_CF))["guide-8.8-smtpd_client_event_limit_exceptions"]
        assert finding.status is c.Status.NOT_CHECKED
        assert "$mynetworks is not managed and the host's value is not known here" in finding.value

    @pytest.mark.parametrize(
        ("name", "value", "rule_id"),
        [
            ("smtpd_client_connection_rate_limit", "0", "guide-8.8-smtpd_client_connection_rate_limit"),
            ("smtpd_client_message_rate_limit", "0", "guide-8.8-smtpd_client_message_rate_limit"),
            ("message_size_limit", "0", "guide-8.8-message_size_limit"),
            ("default_process_limit", "0", "guide-8.8-default_process_limit"),
            ("anvil_rate_time_unit", "0s", "guide-8.8-anvil_rate_time_unit"),
            ("header_size_limit", "20480000", "guide-8.8-header_size_limit"),
            ("queue_minfree", "0", "guide-8.8-queue_minfree"),
            ("queue_minfree", "15359999", "guide-8.8-queue_minfree"),
            ("smtpd_client_event_limit_exceptions", "0.0.0.0/0", "guide-8.8-smtpd_client_event_limit_exceptions"),
            ("smtpd_sasl_type", "cyrus", "guide-8.8.3-sasl_dovecot"),
            ("smtpd_sasl_security_options", "noanonymous", "guide-8.8.3-smtpd_sasl_security_options"),
            ("smtpd_sasl_tls_security_options", "noplaintext", "guide-8.8.3-smtpd_sasl_tls_security_options"),
            ("smtpd_tls_security_level", "none", "guide-8.8-tls"),
        ],
    )
    def test_a_weakened_directive_fails_its_rule_only(self, name, value, rule_id):
        findings = by_id(c.judge({**GUIDE_MAIN_CF, name: value}, host=DEBIAN_HOST))
        assert findings[rule_id].status is c.Status.FAIL
        assert f"{name} = {value}" in findings[rule_id].value
        failed = {i for i, f in findings.items() if f.status is c.Status.FAIL}
        # With no size limit, no queue_minfree is 1.5 x enough either.
        knock_on = {"guide-8.8-queue_minfree"} if name == "message_size_limit" else set()
        assert failed == {rule_id} | knock_on

    def test_queue_minfree_names_the_bound(self):
        finding = by_id(c.judge({**GUIDE_MAIN_CF, "queue_minfree": "100"}))["guide-8.8-queue_minfree"]
        assert "1.5 x message_size_limit (10240000) = 15360000" in finding.value

    def test_unmanaged_message_size_limit_is_the_hosts_own_not_postfixs_default(self):
        host = {"message_size_limit": "50000000"}
        assert status({"queue_minfree": "15360000"}, "guide-8.8-queue_minfree", host=host) is c.Status.FAIL
        assert status({"queue_minfree": "75000000"}, "guide-8.8-queue_minfree", host=host) is c.Status.PASS
        assert status({"header_size_limit": "60000000"}, "guide-8.8-header_size_limit", host=host) is c.Status.FAIL
        # Absent from the host's main.cf: Postfix's default is in force there.
        assert status({"queue_minfree": "15360000"}, "guide-8.8-queue_minfree", host={"message_size_limit": ""}) is (
            c.Status.PASS
        )

    def test_unmanaged_message_size_limit_not_known_at_preview_is_not_checked(self):
        for rule_id, name in (
            ("guide-8.8-queue_minfree", "queue_minfree"),
            ("guide-8.8-header_size_limit", "header_size_limit"),
        ):
            finding = by_id(c.judge({name: "15360000"}))[rule_id]
            assert finding.status is c.Status.NOT_CHECKED, finding
            assert "message_size_limit is not managed" in finding.value

    def test_a_directive_removed_on_the_host_is_judged_with_postfix_default(self):
        # read() reports an absent directive as "": Postfix then runs on its default (no rate limit).
        finding = by_id(c.judge({"smtpd_client_connection_rate_limit": ""}))
        rate = finding["guide-8.8-smtpd_client_connection_rate_limit"]
        assert rate.status is c.Status.FAIL
        assert "unset: Postfix default" in rate.value

    def test_a_removed_directive_with_an_empty_default_reads_cleanly(self):
        finding = by_id(c.judge({**GUIDE_MAIN_CF, "smtpd_tls_security_level": ""}))["guide-8.8-tls"]
        assert finding.status is c.Status.FAIL
        assert finding.value.startswith("smtpd_tls_security_level = (unset: Postfix default); ")

    def test_unmanaged_directives_are_not_managed(self):
        assert status({}, "guide-8.8-smtpd_client_connection_rate_limit") is c.Status.NOT_MANAGED
        assert status({}, "guide-8.8.3-sasl_dovecot") is c.Status.NOT_MANAGED

    def test_sasl_path_computed_by_dovecot_counts_as_set(self):
        main_cf = {k: v for k, v in GUIDE_MAIN_CF.items() if k != "smtpd_sasl_path"}
        finding = by_id(c.judge(main_cf, pending=["smtpd_sasl_path"]))["guide-8.8.3-sasl_dovecot"]
        assert finding.status is c.Status.PASS
        assert c.PENDING in finding.value

    def test_tls_options_default_to_the_plain_options(self):
        main_cf = {"smtpd_sasl_security_options": "noanonymous", "smtpd_sasl_tls_security_options": ""}
        assert status(main_cf, "guide-8.8.3-smtpd_sasl_tls_security_options") is c.Status.PASS


class TestBaselines:
    def test_relay_rule_is_not_applicable_on_a_public_mx(self):
        finding = by_id(c.judge({"smtpd_client_restrictions": "permit"}))["RHEL-09-252050"]
        assert finding.status is c.Status.NOT_APPLICABLE
        assert "public MX" in finding.value

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("permit_mynetworks, reject", c.Status.PASS),
            ("permit_mynetworks,reject", c.Status.PASS),
            ("permit_mynetworks, permit_sasl_authenticated, reject", c.Status.FAIL),
            ("", c.Status.FAIL),
        ],
    )
    def test_relay_rule_follows_the_stig_check(self, value, expected):
        main_cf = {"smtpd_client_restrictions": value}
        for rule_id in ("RHEL-08-040290", "RHEL-09-252050"):
            assert status(main_cf, rule_id, public_mx=False) is expected

    def test_relay_finding_names_the_extra_entries(self):
        main_cf = {"smtpd_client_restrictions": "permit_mynetworks, permit_sasl_authenticated, reject"}
        finding = by_id(c.judge(main_cf, public_mx=False))["RHEL-08-040290"]
        assert "other than permit_mynetworks and reject: permit_sasl_authenticated" in finding.value

    def test_local_only_listening(self):
        assert status({"inet_interfaces": "loopback-only"}, "CIS-RHEL9-2.1.21", public_mx=False) is c.Status.PASS
        assert status({"inet_interfaces": "all"}, "CIS-RHEL9-2.1.21", public_mx=False) is c.Status.FAIL
        assert status({"inet_interfaces": "all"}, "CIS-RHEL9-2.1.21") is c.Status.NOT_APPLICABLE

    def test_banner_must_not_name_the_mta(self):
        assert status({"smtpd_banner": "$myhostname ESMTP"}, "postfix_server_banner") is c.Status.PASS
        assert status({"smtpd_banner": "$myhostname ESMTP $mail_name"}, "postfix_server_banner") is c.Status.FAIL
        assert status({"smtpd_banner": ""}, "postfix_server_banner") is c.Status.FAIL

    @pytest.mark.parametrize(
        "banner",
        [
            "$myhostname ESMTP $(mail_name)",
            "$myhostname ESMTP ${mail_name}",
            "$myhostname ESMTP ${mail_version?{v$mail_version}}",
            "$myhostname ESMTP ${nothing_here:$mail_name}",
            "$myhostname ESMTP $who",
        ],
    )
    def test_banner_is_expanded_as_postfix_expands_it(self, banner):
        main_cf = {"smtpd_banner": banner, "who": "$mail_name", "nothing_here": ""}
        finding = by_id(c.judge(main_cf))["postfix_server_banner"]
        assert finding.status is c.Status.FAIL, finding
        assert "names the MTA" in finding.value

    def test_banner_with_a_reference_not_known_is_not_checked(self):
        finding = by_id(c.judge({"smtpd_banner": "$myhostname ESMTP $greeting"}))["postfix_server_banner"]
        assert finding.status is c.Status.NOT_CHECKED
        assert "$greeting" in finding.value


class TestEventLimitExceptions:
    RULE = "guide-8.8-smtpd_client_event_limit_exceptions"

    def judged(self, value, host=None, **more):
        main_cf = {"smtpd_client_event_limit_exceptions": value, **more}
        return by_id(c.judge(main_cf, host=host))[self.RULE]

    @pytest.mark.parametrize(
        "value",
        [
            "0.0.0.0/0",
            "0.0.0.0/1, 128.0.0.0/1",
            "[::]/1, [8000::]/1",
            "0.0.0.0/1, 128.0.0.0/1, [::]/1, [8000::]/1",
            "64.0.0.0/2",
            "[2000::]/3",
        ],
    )
    def test_networks_are_judged_by_what_they_cover(self, value):
        finding = self.judged(value)
        assert finding.status is c.Status.FAIL, finding
        assert "public" in finding.value

    @pytest.mark.parametrize(
        "value",
        ["127.0.0.0/8 [::1]/128", "10.0.0.0/8, 192.168.0.0/16", "198.51.100.7", "203.0.113.0/24 [2001:db8::]/48"],
    )
    def test_trusted_networks_pass(self, value):
        assert self.judged(value).status is c.Status.PASS

    def test_mynetworks_is_expanded_and_judged(self):
        assert self.judged("$mynetworks", mynetworks="0.0.0.0/0").status is c.Status.FAIL
        assert self.judged("$mynetworks", host={"mynetworks": "0.0.0.0/0"}).status is c.Status.FAIL
        assert self.judged("${mynetworks}", host={"mynetworks": "127.0.0.0/8"}).status is c.Status.PASS

    @pytest.mark.parametrize(
        ("value", "why"),
        [
            ("cidr:/etc/postfix/exempt.cidr", "is a lookup table"),
            ("$mynetworks", "$mynetworks is not managed"),
            ("/etc/postfix/exempt", "is a file on the host"),
            ("!10.0.0.1 10.0.0.0/8", "negates"),
            ("trusted.example.org", "host or domain name"),
        ],
    )
    def test_what_the_text_does_not_tell_is_not_checked_with_the_reason(self, value, why):
        finding = self.judged(value)
        assert finding.status is c.Status.NOT_CHECKED, finding
        assert why in finding.value

    def test_mynetworks_absent_on_the_host_is_computed_there(self):
        finding = self.judged("$mynetworks", host={"mynetworks": ""})
        assert finding.status is c.Status.NOT_CHECKED
        assert "computed by Postfix on the host" in finding.value


class TestNumbers:
    @pytest.mark.parametrize("value", ["\u0661\u0660\u0660\u0660\u0660", "\u00b2", "1\u00b2"])
    def test_only_ascii_digits_are_numbers(self, value):
        finding = by_id(c.judge({"message_size_limit": value}))["guide-8.8-message_size_limit"]
        assert finding.status is c.Status.FAIL
        assert "not a whole number" in finding.value

    def test_rules_needing_more_than_config_files_are_not_checked_with_why(self):
        finding = by_id(c.judge(GUIDE_MAIN_CF, public_mx=False))
        assert finding["RHEL-09-215101"].status is c.Status.NOT_CHECKED
        assert "package" in finding["RHEL-09-215101"].value
        assert finding["has_nonlocal_mta"].status is c.Status.NOT_CHECKED


class TestStateForm:
    def test_cells_round_trip_with_scope(self):
        table = c.report({**GUIDE_MAIN_CF, "queue_minfree": "1"}, public_mx=False)
        assert table[c.SCOPE_KEY] == c.NOT_PUBLIC_MX and not c.public_mx_of(table)
        assert table["guide-8.8-queue_minfree"].startswith("fail: queue_minfree = 1:")
        shuffled = dict(sorted(table.items(), reverse=True))  # state maps keep no order
        assert [f.rule.id for f in c.from_cells(shuffled)] == [r.id for r in c.RULES]
        back = {f.rule.id: f for f in c.from_cells(shuffled)}
        assert back["guide-8.8-queue_minfree"].status is c.Status.FAIL
        assert back["RHEL-09-252050"].status is c.Status.NOT_MANAGED
        assert back["RHEL-09-215101"].status is c.Status.NOT_CHECKED
        assert len(back) == len(c.RULES)

    def test_records_carry_id_status_value_source(self):
        exported = c.records(c.report(GUIDE_MAIN_CF))
        assert list(exported) == [r.id for r in c.RULES]
        record = exported["RHEL-08-040290"]
        assert record["status"] == "not applicable"
        assert record["source"].startswith("DISA STIG for RHEL 8")
        assert set(record) == {"status", "value", "source"}

    def test_unknown_rule_ids_in_old_state_are_skipped(self):
        assert c.from_cells({"retired-rule": "pass: x", c.SCOPE_KEY: c.PUBLIC_MX}) == []


class TestDovecot:
    def test_guide_listener_passes_and_a_wider_mode_fails(self):
        assert c.judge_dovecot({"listener": "unix"})[0].status is c.Status.PASS
        wide = c.judge_dovecot({"listener": "unix", "socket_mode": "0666"})[0]
        assert wide.status is c.Status.FAIL and "mode = 0666" in wide.value
        assert c.judge_dovecot({"listener": "inet"})[0].status is c.Status.NOT_APPLICABLE
