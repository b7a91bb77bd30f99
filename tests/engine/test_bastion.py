"""Hosts the controller cannot reach over SSH, managed through a bastion (auth), and logins with an SSH agent.

While a test runs `behind_bastion`, mx and edge answer SSH only to auth's address; SMTP stays open to everyone,
so the tests still check the hosts as a mail client does.
"""

from __future__ import annotations

import base64
import difflib
import os
import re
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from secure_postfix.remote.ssh import HostKeyError, RemoteError, Session, SshTarget, parse_host_keys
from tests.engine import mail_client
from tests.engine.harness import (
    RECORD,
    EngineProject,
    bed_config,
    bed_target,
    dovecot_password,
    find_secrets,
    ssh_logins,
)
from tests.tls_files import make_cert
from toolchain.testbed.jumpnet import behind_bastion
from toolchain.testbed.layout import SUBNET

pytestmark = [pytest.mark.engine, pytest.mark.long(130)]

BASTION = "auth"
TARGETS = ["mx", "edge"]
USER = "alice"
LIMITS = {"message_size_limit": 5242880, "queue_minfree": 7864320, "smtpd_client_connection_rate_limit": 90}
LEDGER = "secure-postfix.ledger.json"
# Names, modes and owners under the config folders, and the contents of every file but the ledger (whose
# entries carry each run's own resource ids).
SNAPSHOT = (
    "find /etc/postfix /etc/dovecot -printf '%p %m %u:%g\\n' | sort; "
    f"find /etc/postfix /etc/dovecot -type f ! -name {LEDGER} -print0 | sort -z | xargs -0 sha256sum; "
    "grep -v '^#' /etc/postfix/main.cf"
)
FIGURES: dict[str, float] = {}


def snapshot(testbed) -> dict[str, str]:
    return {h: testbed.run(h, "set -o pipefail; " + SNAPSHOT).stdout for h in (*TARGETS, BASTION)}


def same_files(now: dict[str, str], expected: dict[str, str]) -> None:
    for host in expected:
        diff = difflib.unified_diff(expected[host].splitlines(), now[host].splitlines(), lineterm="")
        assert now[host] == expected[host], f"{host}:\n" + "\n".join(diff)


def sshd_log(testbed, host: str) -> str:
    time.sleep(0.2)  # sshd writes its line just after the event
    return (testbed.hosts[host].root / "log" / "sshd.log").read_text(errors="replace")


def source(n: int) -> str:
    return f"{SUBNET}{120 + n}"


def behind(config: dict, bastion: str = BASTION) -> dict:
    for name in TARGETS:
        config["hosts"][name]["bastion"] = bastion
    return config


@pytest.fixture(scope="module")
def password(testbed) -> str:
    return dovecot_password(testbed, (BASTION,), USER, "Dovecot password (bastion tests)")


@pytest.fixture(scope="module")
def sites(testbed, tmp_path_factory) -> dict:
    cert, key = make_cert(tmp_path_factory.mktemp("bastion-certs"), testbed.hosts["edge"].hostname)
    return {
        "solo": {"postfix_host": "mx", "limits": LIMITS},
        "split": {
            "postfix_host": "edge",
            "dovecot_host": BASTION,
            "sasl": {"listener": "inet"},
            "tls": {"cert_file": str(cert), "key_file": str(key)},
        },
    }


def timed_up(project: EngineProject, label: str):
    started = time.monotonic()
    run = project.up()
    FIGURES[label] = time.monotonic() - started
    print(f"{label}: {FIGURES[label]:.2f}s", flush=True)
    assert run.ok, run.text
    return run


def direct_target(testbed, host: str, **changes) -> SshTarget:
    return bed_target(testbed, host, **{"connect_timeout": 2.0, "connect_attempts": 1, **changes})


def auth_plain(word: str) -> str:
    return base64.b64encode(f"\0{USER}\0{word}".encode()).decode()


def check_mail_clients_see_the_declared_hosts(testbed, password: str) -> None:
    client = mail_client.connect(testbed.hosts["mx"].address, source(1))
    try:
        assert f"SIZE {LIMITS['message_size_limit']}" in mail_client.ehlo_lines(client)
    finally:
        client.close()
    client = mail_client.connect(testbed.hosts["edge"].address, source(2))
    try:
        lines = mail_client.ehlo_lines(client)
        assert "STARTTLS" in lines and not any(ln.startswith("AUTH") for ln in lines), lines
        assert client.starttls(context=mail_client.tls_context())[0] == 220
        assert "AUTH PLAIN LOGIN" in mail_client.ehlo_lines(client)
        assert client.docmd("AUTH", "PLAIN " + auth_plain(password + "x"))[0] == 535
        assert client.docmd("AUTH", "PLAIN " + auth_plain(password))[0] == 235
    finally:
        client.close()


def test_targets_are_reachable_only_through_the_bastion(testbed):
    with behind_bastion(testbed, TARGETS, BASTION):
        for host in TARGETS:
            with pytest.raises(RemoteError, match="could not open an SSH connection"):
                Session(direct_target(testbed, host)).__enter__()
            through = direct_target(testbed, host, bastion=direct_target(testbed, BASTION), bastion_name=BASTION)
            with Session(through) as session:
                assert session.run(["hostname"]).out.strip() == testbed.hosts[host].hostname
        # The target's own key is checked end to end, inside the tunnel: edge's key pinned for mx is refused.
        wrong = direct_target(testbed, "mx", host_key=testbed.hosts["edge"].host_key)
        with pytest.raises(HostKeyError, match="mismatch") as refused:
            Session(replace(wrong, bastion=direct_target(testbed, BASTION), bastion_name=BASTION)).__enter__()
        assert str(refused.value).startswith(testbed.hosts["mx"].address), refused.value
        assert testbed.smtp_banner("mx").startswith("220 ")
    with Session(direct_target(testbed, "mx")) as session:  # the block is gone with the context
        assert session.run(["true"]).rc == 0


def test_unreachable_bastion_is_named_with_the_target(testbed):
    nobody = f"{SUBNET}139"  # a client address of the bed: nothing listens there
    bastion = replace(direct_target(testbed, BASTION), host=nobody)
    target = direct_target(testbed, "mx", bastion=bastion, bastion_name="jump")
    with pytest.raises(RemoteError) as failed:
        Session(target).__enter__()
    message = str(failed.value)
    assert message.startswith(f"{testbed.hosts['mx'].address}: not reached: bastion jump ({nobody}): "), message


def test_bastion_mistakes_refused_at_preview(testbed, tmp_path):
    project = EngineProject(tmp_path / "refused", "refused")
    logins = ssh_logins(testbed)
    config = bed_config(testbed, {"solo": {"postfix_host": "mx", "limits": LIMITS}}, hosts=["mx", BASTION])
    config["hosts"]["mx"]["bastion"] = "nowhere"
    project.configure(config)
    run = project.preview()
    assert not run.ok and "secure-postfix:hosts.mx.bastion is 'nowhere'" in run.text, run.text
    config["hosts"]["auth"]["bastion"] = "auth"
    config["hosts"]["mx"]["bastion"] = "auth"
    project.configure(config)
    run = project.preview()
    assert not run.ok and "secure-postfix:hosts.auth.bastion is 'auth'" in run.text, run.text
    config["hosts"]["auth"].pop("bastion")
    config["bastions"] = {"jump": {"address": testbed.hosts[BASTION].address, "insecure_ignore_host_key": "no"}}
    config["hosts"]["mx"]["bastion"] = "jump"
    project.configure(config)
    run = project.preview()
    assert not run.ok and "secure-postfix:bastions.jump.insecure_ignore_host_key must be true or false" in run.text
    config["bastions"]["jump"]["host_key"] = testbed.hosts[BASTION].host_key
    config["bastions"]["jump"].pop("insecure_ignore_host_key")
    project.configure(config)
    run = project.preview()
    assert run.ok, run.text
    assert ssh_logins(testbed) == logins  # preview, even with a bastion, opens no SSH connection


def test_up_refresh_destroy_through_the_bastion_match_a_direct_run(testbed, sites, password, tmp_path):
    before = snapshot(testbed)
    direct = EngineProject(tmp_path / "direct", "direct")
    direct.configure(bed_config(testbed, sites))
    timed_up(direct, "up, 3 hosts, direct")
    applied = snapshot(testbed)
    assert applied != before
    check_mail_clients_see_the_declared_hosts(testbed, password)
    assert direct.destroy().ok
    same_files(snapshot(testbed), before)

    via = EngineProject(tmp_path / "via", "via")
    via.configure(behind(bed_config(testbed, sites)))
    with behind_bastion(testbed, TARGETS, BASTION):
        on_bastion = ssh_logins(testbed, [BASTION])
        timed_up(via, "up, 3 hosts, mx and edge through auth")
        # One login to reach mx and edge, one for the Dovecot resource on auth itself (reached directly).
        assert ssh_logins(testbed, [BASTION]) - on_bastion == 2
        same_files(snapshot(testbed), applied)
        check_mail_clients_see_the_declared_hosts(testbed, password)
        refreshed = via.refresh()
        assert refreshed.ok, refreshed.text
        assert via.preview().summary.get("update", 0) == 0  # no drift: refresh read what up wrote
        gone = via.destroy()
        assert gone.ok, gone.text
        same_files(snapshot(testbed), before)


def test_one_bastion_login_per_up_of_two_hosts(testbed, tmp_path):
    sites = {"fleet": {"postfix_hosts": TARGETS, "limits": LIMITS}}  # one policy on both hosts
    direct = EngineProject(tmp_path / "direct2", "direct2")
    direct.configure(bed_config(testbed, sites, hosts=TARGETS))
    timed_up(direct, "up, 2 hosts, direct")
    assert direct.destroy().ok

    project = EngineProject(tmp_path / "count", "count")
    config = behind(bed_config(testbed, sites, hosts=[*TARGETS, BASTION]))
    project.configure(config)
    with behind_bastion(testbed, TARGETS, BASTION):
        on_bastion, on_targets = ssh_logins(testbed, [BASTION]), ssh_logins(testbed, TARGETS)
        timed_up(project, "up, 2 hosts, through auth")
        FIGURES["bastion logins per up of 2 hosts"] = ssh_logins(testbed, [BASTION]) - on_bastion
        assert FIGURES["bastion logins per up of 2 hosts"] == 1
        assert ssh_logins(testbed, TARGETS) - on_targets == 2
        assert project.destroy().ok
    print("\nbastion figures: " + "; ".join(f"{k}: {v:.2f}" for k, v in FIGURES.items()))


def test_changed_bastion_key_is_refused_and_nothing_reaches_a_target(testbed, tmp_path):
    other = ed25519.Ed25519PrivateKey.generate().public_key()
    wrong = other.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    real = parse_host_keys(testbed.hosts[BASTION].host_key)[0]
    config = bed_config(testbed, {"solo": {"postfix_host": "mx", "limits": LIMITS}}, hosts=["mx"])
    config["bastions"] = {"jump": {"address": testbed.hosts[BASTION].address, "host_key": wrong}}
    config["hosts"]["mx"]["bastion"] = "jump"
    project = EngineProject(tmp_path / "wrongkey", "wrongkey")
    project.configure(config)
    with behind_bastion(testbed, TARGETS, BASTION):
        logs = {h: sshd_log(testbed, h) for h in TARGETS}
        files, logins = snapshot(testbed), ssh_logins(testbed, [BASTION])
        run = project.up()
        assert not run.ok
        text = run.text
        assert "bastion jump" in text and "host key mismatch" in text, text
        assert real.fingerprint in text and parse_host_keys(wrong)[0].fingerprint in text, text
        assert testbed.hosts["mx"].address not in re.findall(r"bastion jump[^\n]*", text)[0]
        assert {h: sshd_log(testbed, h) for h in TARGETS} == logs  # not even a TCP connection came
        assert snapshot(testbed) == files and ssh_logins(testbed, [BASTION]) == logins


# -- an SSH agent ---------------------------------------------------------------------------------
def start_agent(folder: Path) -> tuple[str, int]:
    sock = str(folder / "agent.sock")
    out = subprocess.run(["ssh-agent", "-s", "-a", sock], capture_output=True, text=True, check=True, timeout=10).stdout
    pid = int(re.search(r"SSH_AGENT_PID=(\d+)", out).group(1))
    return sock, pid


def test_agent_key_applies_a_change_with_no_key_in_config_state_or_output(testbed, tmp_path):
    key_text = testbed.client_key_path.read_text()
    RECORD.secret("agent-held SSH key", key_text)
    sock, pid = start_agent(tmp_path)
    try:
        config = bed_config(testbed, {"solo": {"postfix_host": "mx", "limits": LIMITS}}, hosts=["mx", BASTION])
        del config["ssh_private_key_file"]
        config.update(ssh_auth="agent", ssh_agent_socket=sock)
        config["hosts"]["mx"]["bastion"] = BASTION
        project = EngineProject(tmp_path / "agent", "agent")
        project.configure(config)
        with behind_bastion(testbed, TARGETS, BASTION):
            empty = project.up()  # the agent holds no key yet
            assert not empty.ok and f"tried the SSH agent at {sock} (0 keys)" in empty.text, empty.text
            env = {**os.environ, "SSH_AUTH_SOCK": sock}
            subprocess.run(["ssh-add", str(testbed.client_key_path)], env=env, capture_output=True, check=True)
            before = testbed.read_file("mx", "/etc/postfix/main.cf")
            run = timed_up(project, "up, 1 host, agent key through auth")
            after = testbed.read_file("mx", "/etc/postfix/main.cf")
            assert after != before and b"message_size_limit = 5242880" in after
            state = project.state_text() + repr(project.export())
            assert '"private_key"' not in state
            assert find_secrets(state + run.text, {"key": key_text}) == []
            assert project.destroy().ok
            assert testbed.read_file("mx", "/etc/postfix/main.cf") == before
    finally:
        os.kill(pid, signal.SIGTERM)


def test_agent_from_ssh_auth_sock(testbed, tmp_path, monkeypatch):
    sock, pid = start_agent(tmp_path)
    try:
        monkeypatch.setenv("SSH_AUTH_SOCK", sock)
        subprocess.run(["ssh-add", str(testbed.client_key_path)], capture_output=True, check=True)
        with Session(direct_target(testbed, "mx", private_key=None, auth_methods=("agent",))) as session:
            assert session.run(["true"]).rc == 0
        subprocess.run(["ssh-add", "-D"], capture_output=True, check=True)
        target = direct_target(testbed, "mx", private_key=None, auth_methods=("agent", "private_key"))
        with pytest.raises(RemoteError) as refused:
            Session(target).__enter__()
        message = str(refused.value)
        assert f"the SSH agent at {sock} (0 keys)" in message and "the private key (none is set" in message
    finally:
        os.kill(pid, signal.SIGTERM)
