"""Errors from the SSH layer name the host they are about (and, for a bastion, the bastion): with twenty hosts in
one `up`, an error without a name sends the admin looking through all of them."""

from __future__ import annotations

import pytest

from secure_postfix.remote import jump
from secure_postfix.remote.ssh import HostKeyError, RemoteError, Session, SshTarget

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def target(**fields) -> SshTarget:
    return SshTarget(**{"host": "10.0.0.5", "private_key": None, "name": "mx", "host_key": HOST_KEY, **fields})


def test_an_unreadable_private_key_names_the_host():
    with pytest.raises(RemoteError) as refused:
        jump.credentials(target(private_key="not a key at all"))
    assert str(refused.value).startswith("mx (10.0.0.5): the SSH private key could not be read")


def test_a_wrong_passphrase_is_named_as_a_possible_cause():
    with pytest.raises(RemoteError, match="and its private_key_password"):
        jump.credentials(target(private_key="junk", private_key_password="pw"))


@pytest.mark.parametrize(
    ("host_key", "words"),
    [("ssh-ed25519", "host_key line is not '<type> <base64>'"), ("ssh-nope AAAA", "is not one paramiko can verify")],
)
def test_a_pinned_key_that_cannot_be_used_names_the_host(host_key, words):
    with pytest.raises(HostKeyError) as refused:
        Session(target(host_key=host_key))._pinned_keys()
    assert str(refused.value).startswith("mx (10.0.0.5): ") and words in str(refused.value)


def test_a_bastions_pin_names_the_bastion_not_the_host_behind_it():
    bastion = target(host="192.0.2.9", name="jump", host_key="ssh-ed25519")
    with pytest.raises(HostKeyError) as refused:
        Session(bastion)._pinned_keys()
    assert str(refused.value).startswith("jump (192.0.2.9): ")


def test_a_session_used_before_it_is_open_names_the_host():
    with pytest.raises(RemoteError, match=r"^mx \(10\.0\.0\.5\): the SSH session is not open"):
        _ = Session(target()).client
