"""The bastion pool: a login that hangs holds back only its own bastion's hosts; a half-open connection goes.

The logins are stand-ins (the pool's locking is the logic under test); the real bastion is in E/test_bastion.py.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import paramiko
import pytest

from secure_postfix.remote import jump
from secure_postfix.remote.ssh import RemoteError, SshTarget


class FakeSession:
    def __init__(self, name: str):
        self.name, self.closed = name, False

    def __exit__(self, *exc) -> None:
        self.closed = True


def behind(bastion: str) -> SshTarget:
    return SshTarget(host="10.0.0.9", private_key="k", insecure_ignore_host_key=True,
                     bastion=SshTarget(host=bastion, private_key="k", insecure_ignore_host_key=True))  # fmt: skip


@pytest.fixture
def pool(monkeypatch):
    slow, opened = threading.Event(), []

    def login(target: SshTarget) -> FakeSession:
        opened.append(target.bastion.host)
        if target.bastion.host == "slow.example" and not slow.is_set():
            slow.wait(10)  # a bastion that does not answer its login
        return FakeSession(target.bastion.host)

    monkeypatch.setattr(jump, "_open_bastion", login)
    alive = property(lambda self: not getattr(self, "broken", False) and not self.session.closed)
    monkeypatch.setattr(jump._Shared, "alive", alive)
    monkeypatch.setattr(jump, "_POOL", {})
    monkeypatch.setattr(jump, "_LOGIN_LOCKS", {}, raising=False)
    monkeypatch.setattr(jump, "_FAILED", {}, raising=False)
    yield slow, opened
    slow.set()


def test_a_hanging_bastion_login_holds_back_only_its_own_hosts(pool):
    slow, _ = pool
    stuck = threading.Thread(target=jump.Tunnel, args=(behind("slow.example"),), daemon=True)
    stuck.start()
    time.sleep(0.2)  # the slow login is under way
    started = time.monotonic()
    tunnel = jump.Tunnel(behind("fast.example"))
    assert time.monotonic() - started < 1, "another bastion's login waited for the hanging one"
    tunnel.close()
    slow.set()
    stuck.join(timeout=10)


def test_hosts_behind_one_bastion_share_one_login(pool):
    _, opened = pool
    tunnels = [jump.Tunnel(behind("fast.example")) for _ in range(3)]
    assert opened == ["fast.example"]
    for t in tunnels:
        t.close()


def test_a_half_open_connection_is_not_handed_out_again(pool, monkeypatch):
    _, opened = pool
    tunnel = jump.Tunnel(behind("fast.example"))

    class DeadTransport:
        def is_active(self):
            return True

        def open_channel(self, *args, **kwargs):
            raise paramiko.SSHException("Timeout opening channel.")

    client = type("Client", (), {"get_transport": lambda self: DeadTransport()})()
    tunnel._shared.session.client = client
    with pytest.raises(RemoteError):
        tunnel.channel()
    tunnel.close()
    jump.Tunnel(behind("fast.example")).close()
    assert opened == ["fast.example", "fast.example"]  # a fresh login for the next host


def test_a_failed_bastion_login_is_tried_once_for_all_its_hosts_and_each_error_names_its_host(pool, monkeypatch):
    _, opened = pool

    def refused(target: SshTarget):
        opened.append(target.bastion.host)
        raise RemoteError(f"bastion {target.bastion.host}: connection refused")

    monkeypatch.setattr(jump, "_open_bastion", refused)
    messages = []
    for host in ("10.0.0.7", "10.0.0.8", "10.0.0.9"):
        target = dataclasses.replace(behind("down.example"), host=host)
        with pytest.raises(RemoteError) as failed:
            jump.Tunnel(target)
        messages.append(str(failed.value))
    assert opened == ["down.example"]
    assert messages[0] == "10.0.0.7: not reached: bastion down.example: connection refused"
    assert messages[2].startswith("10.0.0.9: not reached: bastion down.example: connection refused (that login failed")
    assert "for 10.0.0.7; not tried again" in messages[2]
    # Later, a new login is tried.
    monkeypatch.setattr(jump, "RETRY_LOGIN_AFTER", 0.0)
    with pytest.raises(RemoteError):
        jump.Tunnel(behind("down.example"))
    assert opened == ["down.example", "down.example"]
