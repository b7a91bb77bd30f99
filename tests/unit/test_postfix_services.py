"""PostfixServices' check: bad service input refused at preview, naming the service and the host."""

import pytest

from secure_postfix.postfix_services import COMPUTED_OUTPUTS, PostfixServicesProvider, desired_lines, drift_of
from tests.unit.settings_as_provider import sasl_directives, sasl_problems

CONNECTION = {"host": "10.0.0.2", "port": 22, "user": "root", "insecure_ignore_host_key": True, "private_key": "k"}





def failures(services, cert="CERT"):
    result = PostfixServicesProvider().check({}, {**CONNECTION, "services": services, "tls_cert_pem": cert})
    return result, [f.reason for f in result.failures]


def test_each_service_is_one_line_of_master_cf_in_the_output_not_the_inputs():
    services = {"submission": {}, "submissions": {"options": {"smtpd_client_connection_rate_limit": 5.0}}}
    result, reasons = failures(services)
    assert reasons == []
    assert "master_cf" not in result.inputs and "master_cf" in COMPUTED_OUTPUTS
    lines = desired_lines(result.inputs)
    assert list(lines) == ["submission/inet", "submissions/inet"]
    assert lines["submissions/inet"].startswith("submissions inet n - - - - smtpd -o syslog_name=postfix/submissions")
    assert lines["submissions/inet"].endswith("-o smtpd_client_connection_rate_limit=5")


@pytest.mark.parametrize(
    ("services", "words"),
    [
        ({"x": {"type": "pop3"}}, "10.0.0.2: services.x: type 'pop3' is not one of submission, submissions"),
        ({"submission": {"listen": "25"}}, "10.0.0.2: services.submission.listen: port 25 is master.cf's smtp"),
        ({"submission": {"options": {"smtpd_banner": "a\nb"}}}, "10.0.0.2: services.submission.options.smtpd_banner"),
        ({"submission": {"options": {"smtpd_nope": "1"}}}, "10.0.0.2: services.submission.options.smtpd_nope: is not"),
        ({}, "10.0.0.2: services: is empty"),
    ],
)
def test_bad_input_names_service_and_host(services, words):
    _, reasons = failures(services)
    assert any(words in r for r in reasons), reasons


def test_services_need_tls():
    _, reasons = failures({"submission": {}}, cert=None)
    assert any(r.startswith("10.0.0.2: tls_cert_pem: is required") for r in reasons), reasons


def test_auth_on_submission_only_keeps_main_cf_auth_off():
    assert sasl_directives({"path": "private/auth"})["smtpd_sasl_auth_enable"] == "yes"
    off = sasl_directives({"path": "private/auth", "offer_auth": "submission"})
    assert off["smtpd_sasl_auth_enable"] == "no" and off["smtpd_sasl_type"] == "dovecot"
    problems = sasl_problems({"path": "private/auth", "offer_auth": "port25"}, {"x": 1}, lambda v: False)
    assert [p.field for p in problems] == ["sasl.offer_auth"]


def test_drift_names_each_entry_the_host_holds_otherwise_with_its_line_there():
    desired = desired_lines({"services": {"submission": {}, "submissions": {}}})
    live = "\n".join(desired.values()).replace("smtpd_tls_auth_only=yes", "smtpd_tls_auth_only=no", 1) + "\n"
    live = "\n".join(ln for ln in live.splitlines() if not ln.startswith("submissions ")) + "\n"
    drift = drift_of(live, desired)
    assert drift["submissions/inet"] == "absent on the host"
    assert drift["submission/inet"] == (
        "on the host only: -o smtpd_tls_auth_only=no; missing on the host: -o smtpd_tls_auth_only=yes"
    )
    assert drift_of("\n".join(desired.values()) + "\n", desired) == {}
    # State gives the options back sorted: the same entry, not a drift.
    options = {"submission": {"options": {"smtpd_client_connection_rate_limit": "30", "smtpd_banner": "x"}}}
    written = desired_lines({"services": options})
    from_state = desired_lines(
        {"services": {"submission": {"options": dict(sorted(options["submission"]["options"].items()))}}}
    )
    assert written != from_state and drift_of("\n".join(written.values()) + "\n", from_state) == {}


def test_the_hosts_ledger_holds_each_entrys_first_original_over_state():
    from secure_postfix.core import ledger
    from secure_postfix.postfix_services import first_originals

    book = ledger.Ledger()
    book.claim("old", [ledger.service_key("submission/inet")], {ledger.service_key("submission/inet"): {"text": None}})
    ours = "submission inet n - - - - smtpd\n  -o smtpd_tls_security_level=encrypt\n"
    # A resource created after another wrote the entry found that text; the ledger knows it was absent.
    assert first_originals(book, "new", {"submission/inet": ours}) == {"submission/inet": None}
    assert first_originals(book, "new", {}, ["submission/inet"]) == {"submission/inet": None}
    assert first_originals(ledger.Ledger(), "new", {"submission/inet": ours}) == {"submission/inet": ours}
    assert ledger.Ledger.parse(book.render()).originals == {"master.cf:submission/inet": {"text": None}}
