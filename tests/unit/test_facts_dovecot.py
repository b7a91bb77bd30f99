"""The Dovecot facts parsers, fed what Dovecot printed: 2.3.19.1 on the test bed (tests/fixtures/facts/dovecot-2.3-*),
and Debian 13's 2.4.1 and Debian 11's 2.3.13 with the same facts script, staged check and probes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secure_postfix.core import dovecot_conf as dc
from secure_postfix.core import host_output
from secure_postfix.remote import dovecot_host

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "facts"


def recorded(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def test_the_facts_script_before_our_file_exists():
    facts = host_output.parse_dovecot_facts(recorded("dovecot-2.3-facts-no-file.json")["output"])
    assert facts.version_text == "2.3.19.1 (9b53102964)"
    assert facts.conf_d_included and facts.running
    assert facts.log_file == "/var/log/dovecot.log"
    assert facts.current is None and facts.current_sha256 == "-"


def test_the_facts_script_with_our_file_in_place():
    facts = host_output.parse_dovecot_facts(recorded("dovecot-2.3-facts-managed.json")["output"])
    listener = dc.Listener(
        kind="unix", path=dc.DEFAULT_SOCKET, mode="0660", user="postfix", group="postfix", address="", port=0
    )
    assert facts.current == dc.render(listener, dc.DEFAULT_MECHANISMS)
    assert facts.current_sha256 == "754b7810833cd6b1209dffa067b482cec2a65e264deb67f08b1dcf7526a7248d"


def test_the_version_dovecot_2_3_prints_is_supported():
    version = dc.parse_version(recorded("dovecot-2.3-facts-no-file.json")["output"].splitlines()[0])
    assert version == (2, 3, 19, 1) and dc.version_supported(version)
    assert not dc.version_supported(dc.parse_version("2.5.0 (abc)"))
    with pytest.raises(ValueError, match="cannot read a Dovecot version"):
        dc.parse_version("none")


def test_the_auth_handshake_lists_the_mechanisms_offered():
    data = recorded("dovecot-2.3-auth-handshake.json")["output"].encode()
    assert host_output.auth_handshake_mechanisms(data) == {"PLAIN"}
    # Until DONE the first turn is not over; another protocol is named by its first line.
    assert host_output.auth_handshake_mechanisms(data[: data.index(b"DONE")]) is None
    with pytest.raises(host_output.NotDovecotAuth, match="220 mx ESMTP"):
        host_output.auth_handshake_mechanisms(b"220 mx ESMTP Postfix\r\n")


# -- Dovecot 2.4.1 (Debian 13) and 2.3.13 (Debian 11): tests/fixtures/facts/dovecot-2.4-*, dovecot-2.3.13-* ----------

UNIX = dc.Listener("unix")
INET = dc.Listener("inet", address="10.0.0.5", port=12345)


@pytest.mark.parametrize(
    ("series", "version_text", "version"),
    [("2.4", "2.4.1-4 (7d8c0e5759)", (2, 4, 1)), ("2.3.13", "2.3.13 (89f716dc2)", (2, 3, 13))],
)
def test_the_facts_script_of_each_series_before_and_with_our_file(series, version_text, version):
    before = host_output.parse_dovecot_facts(recorded(f"dovecot-{series}-facts-no-file.json")["output"])
    assert before.version_text == version_text and dc.parse_version(before.version_text) == version
    assert dc.version_supported(version)
    # The log path is read on 2.4 too, where `doveconf -h log_path` stops with "Multiple settings matched".
    assert before.log_file == "/var/log/dovecot.log"
    assert before.conf_d_included and before.running
    assert before.current is None and before.current_sha256 == "-"
    managed = host_output.parse_dovecot_facts(recorded(f"dovecot-{series}-facts-managed.json")["output"])
    # A unix listener is written alike on 2.3 and 2.4: the same bytes as Debian 12's 2.3.19 has.
    assert managed.current == dc.render(UNIX, dc.DEFAULT_MECHANISMS, version) == dc.render(UNIX, "plain login")
    assert managed.current_sha256 == "754b7810833cd6b1209dffa067b482cec2a65e264deb67f08b1dcf7526a7248d"


@pytest.mark.parametrize(
    ("series", "version", "inet_settings"),
    [
        ("2.4", (2, 4, 1), {"listen": "10.0.0.5", "port": "12345"}),
        ("2.3.13", (2, 3, 13), {"address": "10.0.0.5", "port": "12345"}),
    ],
)
def test_doveconf_of_each_series_reads_our_listener_as_rendered(series, version, inet_settings):
    """`doveconf -n` printed what Dovecot read with our file (rendered for its version) in conf.d."""
    unix = host_output.parse_doveconf(recorded(f"dovecot-{series}-doveconf-unix.json")["output"])
    assert unix["auth_mechanisms"] == "plain login"
    assert unix["service auth"]["unix_listener /var/spool/postfix/private/auth"] == {
        "group": "postfix",
        "mode": "0660",
        "user": "postfix",
    }
    inet = host_output.parse_doveconf(recorded(f"dovecot-{series}-doveconf-inet.json")["output"])
    assert inet["service auth"]["inet_listener postfix_sasl"] == inet_settings
    assert f"    {next(iter(inet_settings))} = 10.0.0.5\n" in dc.render(INET, "plain login", version)


def test_doveconf_of_2_4_starts_with_the_config_version_debian_13_sets():
    read = host_output.parse_doveconf(recorded("dovecot-2.4-doveconf-unix.json")["output"])
    assert next(iter(read)) == "dovecot_config_version" and read["dovecot_config_version"] == "2.4.0"
    # Sections nest; a value may hold braces (Dovecot 2.4's %{variables}) without opening one.
    assert read["mail_home"] == "/home/%{user | username}"
    assert read["namespace inbox"]["mailbox Drafts"] == {"special_use": '"\\\\Drafts"'}


@pytest.mark.parametrize(
    ("fixture", "words"),
    [
        # 2.3's file on 2.4: the listener's address has another name there.
        ("dovecot-2.4-staged-check-2.3-inet-file.json", "address: Unknown setting: address"),
        # 2.4's file on 2.3: 2.3 has no `listen` in a listener.
        ("dovecot-2.3.13-staged-check-2.4-inet-file.json", "Unknown setting: service { inet_listener { listen"),
    ],
)
def test_the_staged_check_refuses_the_other_series_file_in_doveconf_s_words(fixture, words):
    check = recorded(fixture)
    assert check["rc"] == 89 and words in check["output"]
    assert "99-secure-postfix-auth.conf line 6" in check["output"]


@pytest.mark.parametrize(("series", "version_line"), [("2.4", "VERSION\t1\t3\n"), ("2.3.13", "VERSION\t1\t2\n")])
def test_the_auth_handshake_of_each_series_lists_the_mechanisms(series, version_line):
    data = recorded(f"dovecot-{series}-auth-handshake.json")["output"].encode()
    assert data.startswith(version_line.encode())
    assert host_output.auth_handshake_mechanisms(data) == {"PLAIN", "LOGIN"}


def test_a_reload_of_dovecot_2_4_logs_the_mark_the_wait_looks_for_and_the_probe_is_answered():
    log, _, rest = recorded("dovecot-2.4-reload.json")["output"].partition("--- stat\n")
    stat, _, auth_test = rest.partition("--- auth test\n")
    lines = log.splitlines()
    assert any(dovecot_host._RELOAD_MARK in line for line in lines)
    assert host_output.dovecot_error_lines(lines) == []
    assert stat.strip() == "660 postfix postfix"
    assert dovecot_host._answered(dovecot_host.Result(77, auth_test.encode(), b""))
