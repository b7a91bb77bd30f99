"""A pinned host key that cannot be a key is refused at preview, with the way to get the real one."""

from pathlib import Path

import pytest
import yaml

from secure_postfix import connection as conn
from secure_postfix import dovecot_auth

REAL = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
CONNECTION = {"host": "192.0.2.25", "port": 22, "private_key": "K"}
STACKS = Path(__file__).resolve().parents[2] / "stacks"


def host_key_problem(host_key):
    problems = {p.field: p.message for p in conn.check_connection({**CONNECTION, "host_key": host_key})}
    return problems.get("host_key")


def example_host_keys():
    keys = []
    for path in sorted(STACKS.glob("Pulumi.example-*.yaml")):
        hosts = yaml.safe_load(path.read_text())["config"].get("secure-postfix:hosts", {})
        keys += [host["host_key"] for host in hosts.values()]
    return keys


@pytest.mark.parametrize(
    "host_key",
    [
        "ssh-ed25519 AAAA...",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExample",
        "ssh-ed25519",
        "ssh-ed25519 not-base64!",
        f"{REAL}\nssh-ed25519 AAAA...",
    ],
)
def test_malformed_host_key_is_refused_saying_how_to_get_the_real_one(host_key):
    message = host_key_problem(host_key)
    assert message and "ssh-keyscan -t ed25519 HOST" in message


def test_the_example_stacks_placeholders_are_refused():
    keys = example_host_keys()
    assert keys
    for key in keys:
        assert "ssh-keyscan" in host_key_problem(key), key


def test_keyscan_output_with_the_host_name_left_in_says_so():
    message = host_key_problem(f"192.0.2.25 {REAL}")
    assert "'192.0.2.25', not a key type" in message and "after the host name" in message


def test_a_host_key_that_is_not_text_is_refused():
    assert "must be text" in host_key_problem(["ssh-ed25519", "AAAA"])


@pytest.mark.parametrize("host_key", [REAL, f"{REAL} root@mx", f"{REAL}\n{REAL}\n"])
def test_real_host_keys_are_accepted(host_key):
    assert host_key_problem(host_key) is None


def test_dovecot_resources_check_the_host_key_too():
    props = {**CONNECTION, "host_key": "ssh-ed25519 AAAA...", "listener": "unix"}
    assert [p.field for p in dovecot_auth.check_props(props)] == ["host_key"]


def test_a_long_placeholder_is_shortened_in_the_message():
    message = host_key_problem("ssh-ed25519 " + "A" * 300)
    assert len(message) < 300
