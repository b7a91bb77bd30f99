"""DovecotAuthService on each supported Dovecot: what it writes, refuses and reads back, from recorded facts.

Dovecot 2.3 (Debian 12: 2.3.19.1; Debian 11: 2.3.13) and 2.4 (Debian 13: 2.4.1). The facts are what each version
printed for the facts script (tests/fixtures/facts/); the host is a fake that records what it is asked. Each refusal
names the host, the version and the setting: at preview from the version the last up or refresh stored (`diff` sees
the stored outputs), at apply from the host's facts, before any change.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from pulumi.output import Unknown

from secure_postfix import dovecot_auth as da
from secure_postfix.core import dovecot_conf as dc
from secure_postfix.core import host_output
from secure_postfix.provider import ApplyError
from tests.unit.test_provider_steps import RecordingSession

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "facts"
LABEL = "auth (10.0.0.5)"


def dovecot_facts(name: str) -> host_output.DovecotFacts:
    return host_output.parse_dovecot_facts(json.loads((FIXTURES / name).read_text())["output"])


DOVECOT_24 = dovecot_facts("dovecot-2.4-facts-no-file.json")
DOVECOT_2313 = dovecot_facts("dovecot-2.3.13-facts-no-file.json")
DOVECOT_2319 = dovecot_facts("dovecot-2.3-facts-no-file.json")


# -- Dovecot: a fake host -------------------------------------------------------------------


class FakeDovecot:
    """DovecotHost's operations, answered from recorded facts; each call recorded in `calls`."""

    def __init__(self, calls: list[tuple], facts: host_output.DovecotFacts):
        self.calls, self.recorded_facts, self.label = calls, facts, LABEL

    def facts(self) -> host_output.DovecotFacts:
        self.calls.append(("facts",))
        return self.recorded_facts

    def check_staged(self, text: str | None) -> None:
        self.calls.append(("check_staged", text))

    def log_size(self, log_file: str | None) -> int | None:
        return 0

    def write(self, text: str | None, expect_sha256: str | None = None) -> None:
        self.calls.append(("write", text))

    def reload(self) -> None:
        self.calls.append(("reload",))

    def verify(self, listener: dc.Listener, mechanism_text: str, timeout: float = 15.0) -> None:
        self.calls.append(("verify", listener.kind))

    def wait_reloaded(self, log_file: str | None, offset: int | None, timeout: float = 10.0) -> bool:
        return True

    def log_errors(self, log_file: str | None, offset: int | None) -> list[str]:
        return []


def dovecot_session(calls: list[tuple]) -> RecordingSession:
    session = RecordingSession(calls)
    session.target = SimpleNamespace(label=LABEL)
    return session


INET_PROPS = {"host": "10.0.0.5", "listener": "inet", "bind_address": "10.0.0.5", "listen_port": 12345}


def dovecot_apply(monkeypatch, facts, props=INET_PROPS) -> tuple[dict, list[tuple]]:
    calls: list[tuple] = []
    host = FakeDovecot(calls, facts)
    monkeypatch.setattr(da, "DovecotHost", lambda _session: host)
    outputs = da.DovecotAuthServiceProvider().apply(dovecot_session(calls), "dovecot-auth:x", dict(props), None)
    return outputs, calls


@pytest.mark.parametrize(
    ("facts", "line", "version"),
    [
        (DOVECOT_24, "    listen = 10.0.0.5\n", "2.4.1-4"),
        (DOVECOT_2313, "    address = 10.0.0.5\n", "2.3.13"),
        (DOVECOT_2319, "    address = 10.0.0.5\n", "2.3.19.1"),
    ],
)
def test_dovecot_apply_checks_and_writes_the_file_of_the_host_s_version(monkeypatch, facts, line, version):
    outputs, calls = dovecot_apply(monkeypatch, facts)
    text = outputs["managed_file"]
    assert line in text and outputs["dovecot_version"] == version
    ops = [c for c in calls if c[0] in ("check_staged", "write", "reload", "verify")]
    assert ops == [("check_staged", text), ("write", text), ("reload",), ("verify", "inet")]


@pytest.mark.parametrize(
    ("facts", "message"),
    [
        (
            DOVECOT_24,
            f"{LABEL}: auth_mechanisms: ntlm not known to Dovecot 2.4.1 (doveconf accepts it, but the auth service "
            "then dies and every new smtpd with it)",
        ),
        (
            dataclasses.replace(DOVECOT_24, version_text="2.5.0 (0a1b2c3d)"),
            f"{LABEL}: Dovecot 2.5.0 is not supported (only 2.3 and 2.4: each reads the auth settings its own way). "
            "Nothing was changed.",
        ),
    ],
)
def test_dovecot_apply_refuses_what_the_host_s_version_cannot_do_before_any_change(monkeypatch, facts, message):
    calls: list[tuple] = []
    monkeypatch.setattr(da, "DovecotHost", lambda _session: FakeDovecot(calls, facts))
    props = {**INET_PROPS, "auth_mechanisms": "plain ntlm"}
    with pytest.raises(ApplyError) as refused:
        da.DovecotAuthServiceProvider().apply(dovecot_session(calls), "dovecot-auth:x", props, None)
    assert str(refused.value).startswith(message) and str(refused.value).endswith("Nothing was changed.")
    assert calls == [("facts",)]


def test_dovecot_refresh_judges_drift_against_the_host_s_version_and_stores_it(monkeypatch):
    calls: list[tuple] = []
    listener = da.listener_from(INET_PROPS)
    for_24 = dc.render(listener, dc.DEFAULT_MECHANISMS, (2, 4, 1))
    provider = da.DovecotAuthServiceProvider()
    stored = {**INET_PROPS, "dovecot_version": "2.3.19.1", "drift": "old"}

    def refresh(current: str) -> dict:
        facts = dataclasses.replace(DOVECOT_24, current=current)
        monkeypatch.setattr(da, "DovecotHost", lambda _session: FakeDovecot(calls, facts))
        return provider.refresh(dovecot_session(calls), "dovecot-auth:x", dict(stored))

    same = refresh(for_24)
    assert "drift" not in same and same["managed_file"] == for_24
    # The host was upgraded since the last up: the next preview judges the stack against 2.4.
    assert same["dovecot_version"] == "2.4.1-4"
    # 2.3's file on a 2.4 host is drift: the next up writes 2.4's.
    assert (
        refresh(dc.render(listener, dc.DEFAULT_MECHANISMS))
        .get("drift", "")
        .startswith(f"{dc.CONFIG_FILE} was changed on the host")
    )


def news_of(props: dict) -> dict:
    return da.checked_inputs({**props, "private_key": "k", "host_key": "ssh-ed25519 AAAA"})


@pytest.mark.parametrize(("version", "refused"), [("2.4.1-4", True), ("2.3.19.1", False), (None, False)])
def test_dovecot_preview_refuses_from_the_version_the_last_up_or_refresh_stored(version, refused):
    olds = {**news_of(INET_PROPS), **({"dovecot_version": version} if version else {})}
    news = news_of({**INET_PROPS, "auth_mechanisms": "plain ntlm"})
    provider = da.DovecotAuthServiceProvider()
    if not refused:
        provider.diff("dovecot-auth:x", olds, news)
        return
    with pytest.raises(ApplyError) as at_preview:
        provider.diff("dovecot-auth:x", olds, news)
    assert str(at_preview.value).startswith(
        "10.0.0.5: auth_mechanisms: ntlm not known to Dovecot 2.4.1 (doveconf accepts it"
    )
    assert "at the last up or refresh; `pulumi refresh` reads it again). Nothing was changed." in str(at_preview.value)


def test_dovecot_preview_refuses_an_unsupported_version_and_skips_unknown_settings():
    olds = {**news_of(INET_PROPS), "dovecot_version": "2.2.36"}
    assert da.preview_problems("2.2.36", news_of(INET_PROPS)) == [
        "Dovecot 2.2.36 is not supported (only 2.3 and 2.4: each reads the auth settings its own way)"
    ]
    with pytest.raises(ApplyError, match=r"^10\.0\.0\.5: Dovecot 2\.2\.36 is not supported"):
        da.DovecotAuthServiceProvider().diff("dovecot-auth:x", olds, news_of(INET_PROPS))
    assert da.preview_problems("2.4.1", {"auth_mechanisms": Unknown()}) == []
    assert da.preview_problems("none", news_of(INET_PROPS)) == []
