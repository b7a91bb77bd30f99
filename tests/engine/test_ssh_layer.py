"""The SSH layer against a real OpenSSH server on a test host."""

from __future__ import annotations

import base64
import socket
import time

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from secure_postfix.remote import ssh
from secure_postfix.remote.ssh import HostKeyError, RemoteError, Session, SshTarget
from tests.engine.harness import bed_target

pytestmark = pytest.mark.engine

HOST = "auth"


def target(testbed, **changes) -> SshTarget:
    return bed_target(testbed, HOST, **{"connect_timeout": 5.0, **changes})


def test_pinned_key_logs_in_and_runs_commands(testbed):
    with Session(target(testbed)) as s:
        assert s.run(["hostname"]).out.strip() == testbed.hosts[HOST].hostname


def test_commands_are_not_held_back_by_nagle(testbed):
    # Each command is a channel of small packets; with Nagle on, each waited about 40 ms for a delayed ACK.
    with Session(target(testbed)) as s:
        sock = s.client.get_transport().sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert s.run(["true"]).rc == 0


def test_a_command_that_waits_costs_the_controller_no_cpu(testbed):
    # A thread waiting for a command sleeps until the host sends something: with a fleet's threads waiting at once,
    # polling every few milliseconds took CPU from the SSH work they wait for.
    with Session(target(testbed)) as s:
        started = time.thread_time()
        assert s.run(["sleep", "2"]).rc == 0
        spent = time.thread_time() - started
    assert spent < 0.005, f"the wait cost {spent * 1000:.1f} ms of CPU"


def test_changed_host_key_is_refused_with_both_fingerprints(testbed):
    other = paramiko.Ed25519Key.from_private_key_file(str(testbed.client_key_path))
    wrong = f"{other.get_name()} {other.get_base64()}"
    with pytest.raises(HostKeyError) as refused:
        Session(target(testbed, host_key=wrong)).__enter__()
    message = str(refused.value)
    assert "mismatch" in message and testbed.hosts[HOST].address in message
    key_type, body = testbed.hosts[HOST].host_key.split()
    offered = paramiko.PKey.from_type_string(key_type, base64.b64decode(body))
    assert offered.fingerprint != other.fingerprint
    assert f"the host offered {key_type} {offered.fingerprint}" in message  # what the host really has
    assert f"the stack pins {other.get_name()} {other.fingerprint}" in message  # what the stack pins
    assert "PRIVATE" not in message


def test_unknown_host_key_is_refused_unless_opted_out(testbed, capfd):
    with pytest.raises(HostKeyError, match="no host_key is pinned"):
        Session(target(testbed, host_key=None)).__enter__()
    with Session(target(testbed, host_key=None, insecure_ignore_host_key=True)) as s:
        assert s.run(["true"]).rc == 0
    assert "NOT verified" in capfd.readouterr().err


def test_values_are_never_shell_expanded(testbed):
    nasty = "$(touch /tmp/sp-injected); `id`; rm -rf / #'\"\n"
    with Session(target(testbed)) as s:
        assert s.run(["printf", "%s", nasty]).out == nasty
        assert s.sh('printf "%s" "$1"', nasty).out == nasty
        assert s.run(["sh", "-c", "test -e /tmp/sp-injected && echo yes || echo no"]).out.strip() == "no"


def test_atomic_write_keeps_mode_and_owner(testbed):
    path = "/etc/dovecot/sp-ssh-layer-test"
    with Session(target(testbed)) as s:
        s.sh('umask 077; echo old > "$1"; chown root:dovecot "$1"; chmod 0640 "$1"', path)
        s.write_file_atomic(path, b"new\n")
        assert s.sh('stat -c "%a %U %G" "$1"; cat "$1"', path).out == "640 root dovecot\nnew\n"
        assert s.sh('ls -a "$(dirname "$1")" | grep -c "^\\.sp-ssh-layer-test" || true', path).out.strip() == "0"
        s.run(["rm", "-f", path])


def test_command_timeout(testbed):
    with Session(target(testbed, command_timeout=1.0)) as s:
        started = time.monotonic()
        with pytest.raises(RemoteError, match="did not finish within 1 s"):
            s.run(["sleep", "5"])
        assert time.monotonic() - started < 3


def test_connect_retries_are_bounded(testbed):
    # Nothing listens on this port of the test host: refused at once, three attempts with backoff.
    started = time.monotonic()
    with pytest.raises(RemoteError, match="after 3 attempts"):
        Session(target(testbed, port=2222)).__enter__()
    assert time.monotonic() - started < 10


def test_wrong_private_key_is_a_clear_error(testbed):
    text = (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
        .decode()
    )
    with pytest.raises(RemoteError, match="was refused") as refused:
        Session(target(testbed, private_key=text)).__enter__()
    assert "BEGIN" not in str(refused.value)


def test_a_host_streaming_output_is_cut_off_naming_host_and_size(testbed, monkeypatch):
    monkeypatch.setattr(ssh, "MAX_OUTPUT_BYTES", 1_000_000)
    with Session(target(testbed)) as s:
        with pytest.raises(RemoteError) as flooded:
            s.run(["head", "-c", "50000000", "/dev/zero"], what="reading a flood")
        assert str(flooded.value).startswith(
            f"{testbed.hosts[HOST].address}: reading a flood wrote more than 1,000,000"
        )
        assert s.run(["echo", "still usable"]).stdout == b"still usable\n"


def test_a_log_re_read_is_bounded(testbed, monkeypatch):
    monkeypatch.setattr(ssh, "MAX_LOG_BYTES", 1000)
    with Session(target(testbed)) as s:
        s.run(["sh", "-c", "seq 1 100000 > /var/tmp/sp-log"])
        try:
            lines = s.read_appended("/var/tmp/sp-log", 0)
            assert lines[0] == "1" and sum(len(ln) + 1 for ln in lines) <= 1000
        finally:
            s.run(["rm", "-f", "/var/tmp/sp-log"])
