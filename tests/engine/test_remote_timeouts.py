"""Every wait on a host is bounded, and the error names the host and what was waited for.

The link faults are real: the host's link on the test bed's bridge is set down for a bounded time.
"""

from __future__ import annotations

import contextlib
import subprocess
import time

import paramiko
import pytest

from secure_postfix.remote.dovecot_host import DovecotError, auth_handshake
from secure_postfix.remote.ssh import RemoteError, Session, SshTarget
from tests.engine.harness import bed_target
from toolchain.testbed.layout import HOST_SPECS

pytestmark = pytest.mark.engine

HOST = "auth"
VETH = next(spec.veth for spec in HOST_SPECS if spec.name == HOST)


def target(testbed, **changes) -> SshTarget:
    return bed_target(
        testbed, HOST, **{"connect_timeout": 1.0, "command_timeout": 2.0, "connect_attempts": 1, **changes}
    )


def link(state: str) -> None:
    subprocess.run(["ip", "link", "set", VETH, state], check=True, timeout=10)


@contextlib.contextmanager
def link_down():
    try:
        link("down")
        yield
    finally:
        link("up")


@pytest.fixture
def session(testbed):
    # The test before may have just brought the link back: the login gets a few tries, the steps under test
    # keep their one-second limits.
    s = Session(target(testbed, connect_attempts=5)).__enter__()
    try:
        yield s
    finally:
        link("up")
        s.__exit__(None, None, None)


def bounded(seconds: float):
    """Asserts the block took less than `seconds`."""

    @contextlib.contextmanager
    def timer():
        started = time.monotonic()
        yield
        assert time.monotonic() - started < seconds

    return timer()


def test_command_past_its_time_limit_names_host_and_command(testbed, session):
    with bounded(4), pytest.raises(RemoteError) as late:
        session.run(["sleep", "5"], timeout=1.0)
    message = str(late.value)
    assert message.startswith(testbed.hosts[HOST].address + ":")
    assert "`sleep 5` did not finish within 1 s" in message


def test_channel_open_on_a_cut_link_names_host_and_step(testbed, session):
    with link_down(), bounded(4), pytest.raises(RemoteError) as cut:
        session.run(["true"], what="reading the test file")
    message = str(cut.value)
    assert message.startswith(testbed.hosts[HOST].address + ":")
    assert "could not open an SSH channel for reading the test file within 1 s" in message


def test_start_of_command_on_a_cut_link_is_bounded(testbed, session, monkeypatch):
    # The link goes down between the channel's opening and the command's start.
    real_exec = paramiko.Channel.exec_command

    def exec_then_cut(chan, command):
        link("down")
        return real_exec(chan, command)

    monkeypatch.setattr(paramiko.Channel, "exec_command", exec_then_cut)
    with bounded(5), pytest.raises(RemoteError) as cut:
        session.run(["true"])
    assert str(cut.value) == f"{testbed.hosts[HOST].address}: `true` did not finish within 2 s" + (
        " (the host or the link to it did not answer)"
    )


def test_upload_on_a_cut_link_is_bounded(testbed, session, monkeypatch):
    # More input than the SSH window takes: sendall waits for a window the host never opens.
    real_exec = paramiko.Channel.exec_command

    def start_then_cut(chan, command):
        real_exec(chan, command)
        link("down")

    monkeypatch.setattr(paramiko.Channel, "exec_command", start_then_cut)
    with bounded(5), pytest.raises(RemoteError) as cut:
        session.run(["cat"], stdin=b"x" * (8 << 20), what="uploading the test data")
    assert "uploading the test data did not finish within 2 s" in str(cut.value)
    assert testbed.hosts[HOST].address in str(cut.value)


def test_session_works_again_after_the_link_returns(testbed, session):
    with link_down(), pytest.raises(RemoteError):
        session.run(["true"])
    # TCP's retransmission backs off while the link is down, so the first try after it may be slow.
    deadline = time.monotonic() + 10
    while True:
        try:
            assert session.run(["echo", "back"]).out == "back\n"
            break
        except RemoteError:
            assert time.monotonic() < deadline, "the session did not recover"


def test_keepalive_is_sent_on_an_idle_connection(testbed):
    with Session(target(testbed, keepalive_interval=1.0)) as s:
        packetizer = s.client.get_transport().packetizer
        before = packetizer._Packetizer__sent_packets
        time.sleep(2.6)
        assert packetizer._Packetizer__sent_packets - before >= 2


TRICKLE = r"""
import socket, time
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 12399)); srv.listen(1); srv.settimeout(20)
conn, _ = srv.accept()
conn.sendall(b"VERSION\t1\t2\n")
for _ in range(40):
    conn.sendall(b"MECH\tPLAIN\n"); time.sleep(0.2)
"""


def test_auth_handshake_from_a_trickling_server_is_bounded(testbed, session):
    testbed.run(HOST, f"/usr/bin/python3 -c '{TRICKLE}' </dev/null >/dev/null 2>&1 &")
    deadline = time.monotonic() + 5
    while "12399" not in testbed.run(HOST, "ss -ltn").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with bounded(3), pytest.raises(DovecotError) as slow:
        auth_handshake(session, "127.0.0.1", 12399, timeout=1.5)
    assert str(slow.value) == (
        f"{testbed.hosts[HOST].address}: no complete auth handshake from 127.0.0.1:12399 within 1.5 s"
    )
