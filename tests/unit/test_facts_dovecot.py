"""The Dovecot facts parsers, fed what Dovecot 2.3.19.1 on the test bed printed (tests/fixtures/facts/dovecot-2.3-*)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secure_postfix.core import dovecot_conf as dc
from secure_postfix.core import host_output

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
    assert not dc.version_supported(dc.parse_version("2.4.1 (abc)"))
    with pytest.raises(ValueError, match="cannot read a Dovecot version"):
        dc.parse_version("none")


def test_the_auth_handshake_lists_the_mechanisms_offered():
    data = recorded("dovecot-2.3-auth-handshake.json")["output"].encode()
    assert host_output.auth_handshake_mechanisms(data) == {"PLAIN"}
    # Until DONE the first turn is not over; another protocol is named by its first line.
    assert host_output.auth_handshake_mechanisms(data[: data.index(b"DONE")]) is None
    with pytest.raises(host_output.NotDovecotAuth, match="220 mx ESMTP"):
        host_output.auth_handshake_mechanisms(b"220 mx ESMTP Postfix\r\n")
