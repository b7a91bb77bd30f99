"""Bastions and SSH agents in stack config, the resources' reach properties, and the shared bastion connection."""

from __future__ import annotations

import time

import pytest

from secure_postfix import connection as conn
from secure_postfix import postfix_config as pc
from secure_postfix import reach
from secure_postfix.remote import jump
from secure_postfix.remote.ssh import RemoteError, SshTarget
from secure_postfix.stack.config import (
    AccessSpec,
    ConfigError,
    parse_access,
    parse_stack,
    with_access,
)
from secure_postfix.stack.program import connection_of

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
SITES = {"solo": {"postfix_host": "mx"}}


def host_fields(host) -> dict:
    """The reach properties the stack program gives a resource for `host` (its name, logins and bastion)."""
    return {k: v for k, v in conn.connection_props(connection_of(host, None)).items() if k in reach.FIELDS}



def hosts(**mx):
    return {
        "mx": {"address": "10.0.0.2", "host_key": KEY, **mx},
        "auth": {"address": "10.0.0.3", "host_key": KEY},
    }


def refused(hosts_raw, sites, bastions=None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_stack(hosts_raw, sites, bastions_raw=bastions)
    return str(caught.value)


def test_host_names_another_host_as_its_bastion():
    spec = parse_stack(hosts(bastion="auth"), SITES)
    jump_host = spec.hosts["mx"].bastion
    assert jump_host is not None and jump_host.name == "auth" and jump_host.address == "10.0.0.3"
    assert spec.hosts["auth"].bastion is None


def test_host_names_an_entry_of_bastions():
    bastions = {"jump": {"address": "192.0.2.9", "port": 2222, "user": "hop", "host_key": KEY}}
    spec = parse_stack(hosts(bastion="jump"), SITES, bastions_raw=bastions)
    fields = host_fields(spec.hosts["mx"])
    assert fields == {
        "host_name": "mx",
        "bastion_name": "jump",
        "bastion_host": "192.0.2.9",
        "bastion_port": 2222,
        "bastion_user": "hop",
        "bastion_host_key": KEY,
        "bastion_insecure_ignore_host_key": False,
    }


def test_a_host_reached_directly_gets_only_its_name_for_messages():
    spec = parse_stack(hosts(), SITES)
    assert host_fields(spec.hosts["mx"]) == {"host_name": "mx"}
    # A host the stack names by its address has no other name to show.
    by_address = parse_stack(
        {"192.0.2.25": {**hosts()["mx"], "address": "192.0.2.25"}}, {"s": {"postfix_host": "192.0.2.25"}}
    )
    assert host_fields(by_address.hosts["192.0.2.25"]) == {}


def test_bastion_reached_through_itself_refused():
    message = refused(hosts(bastion="mx"), SITES)
    assert "secure-postfix:hosts.mx.bastion" in message and "through itself" in message


def test_unknown_bastion_refused_naming_the_key():
    message = refused(hosts(bastion="nowhere"), SITES, {"jump": {"address": "192.0.2.9", "host_key": KEY}})
    assert "secure-postfix:hosts.mx.bastion is 'nowhere'" in message and "jump" in message


def test_bastion_behind_another_bastion_refused():
    raw = hosts(bastion="auth")
    raw["auth"]["bastion"] = "mx"
    message = refused(raw, SITES)
    assert "hosts.mx.bastion" in message and "reachable directly" in message


def test_bastions_entry_with_its_own_bastion_refused():
    message = refused(hosts(bastion="jump"), SITES, {"jump": {"address": "192.0.2.9", "host_key": KEY, "bastion": "x"}})
    assert "secure-postfix:bastions.jump.bastion" in message


def test_bastion_without_pinned_key_refused():
    message = refused(hosts(bastion="jump"), SITES, {"jump": {"address": "192.0.2.9"}})
    assert "secure-postfix:bastions.jump.host_key is required" in message and "bastion of mx" in message


def test_bastion_opt_out_is_a_real_boolean():
    bastion = {"jump": {"address": "192.0.2.9", "insecure_ignore_host_key": "no"}}
    assert "bastions.jump.insecure_ignore_host_key must be true or false" in refused(
        hosts(bastion="jump"), SITES, bastion
    )
    bastion["jump"]["insecure_ignore_host_key"] = "false"
    assert "bastions.jump.host_key is required" in refused(hosts(bastion="jump"), SITES, bastion)
    bastion["jump"]["insecure_ignore_host_key"] = True
    assert (
        parse_stack(hosts(bastion="jump"), SITES, bastions_raw=bastion).hosts["mx"].bastion.insecure_ignore_host_key
        is True
    )


def test_managed_bastion_without_pinned_key_refused():
    raw = hosts(bastion="auth")
    del raw["auth"]["host_key"]
    assert "secure-postfix:hosts.auth.host_key is required" in refused(raw, SITES)


@pytest.mark.parametrize(
    ("given", "methods"),
    [
        (None, ("private_key",)),
        ("agent", ("agent",)),
        ("agent, private_key", ("agent", "private_key")),
        (["private_key", "agent"], ("private_key", "agent")),
    ],
)
def test_ssh_auth_methods(given, methods):
    assert parse_access(given, None).methods == methods


@pytest.mark.parametrize("given", ["password", ["agent", "agent"], [], 3, "agent,"])
def test_bad_ssh_auth_refused(given):
    with pytest.raises(ConfigError, match="secure-postfix:ssh_auth must be"):
        parse_access(given, None)


def test_agent_socket_needs_the_agent_and_an_absolute_path():
    assert parse_access("agent", "/run/agent.sock").agent_socket == "/run/agent.sock"
    with pytest.raises(ConfigError, match="ssh_auth does not list agent"):
        parse_access(None, "/run/agent.sock")
    with pytest.raises(ConfigError, match="absolute path"):
        parse_access("agent", "agent.sock")


def test_access_reaches_every_host_and_its_bastion():
    spec = with_access(parse_stack(hosts(bastion="auth"), SITES), AccessSpec(("agent",), "/run/a.sock"))
    fields = host_fields(spec.hosts["mx"])
    assert fields["ssh_auth"] == ["agent"] and fields["agent_socket_path"] == "/run/a.sock"
    target = conn.ssh_target({"host": "10.0.0.2", **fields})
    assert target.private_key is None and target.auth_methods == ("agent",)
    assert target.bastion is not None and target.bastion.host == "10.0.0.3"
    assert target.bastion.auth_methods == ("agent",) and target.bastion.agent_socket == "/run/a.sock"
    assert target.bastion_name == "auth"


# -- the resources' checks (preview) -----------------------------------------------------------
BASE = {"host": "10.0.0.2", "port": 22, "user": "root", "host_key": KEY, "private_key": "k"}
BASTION = {"bastion_name": "auth", "bastion_host": "10.0.0.3", "bastion_port": 22, "bastion_host_key": KEY}


def problems(**props):
    return {p.field: str(p) for p in pc.check_props({**BASE, **props, "limits": {}})}


def test_resource_with_a_pinned_bastion_passes():
    assert problems(**BASTION) == {}


def test_resource_bastion_without_key_refused():
    found = problems(**{**BASTION, "bastion_host_key": None})
    assert "bastion_host_key" in found and "bastion auth" in found["bastion_host_key"]
    assert problems(**{**BASTION, "bastion_host_key": None, "bastion_insecure_ignore_host_key": True}) == {}
    assert "bastion_insecure_ignore_host_key" in problems(**{**BASTION, "bastion_insecure_ignore_host_key": "true"})


def test_resource_bastion_with_a_placeholder_key_refused():
    assert "bastion_host_key" in problems(**{**BASTION, "bastion_host_key": "ssh-ed25519 AAAA..."})


def test_resource_reached_through_itself_refused():
    assert "through itself" in problems(**{**BASTION, "bastion_host": "10.0.0.2"}).get("bastion_host", "")


def test_agent_login_needs_no_private_key():
    assert "private_key" in problems(private_key=None)
    assert problems(private_key=None, ssh_auth=["agent"]) == {}
    assert "ssh_auth" in problems(ssh_auth=["password"])


def test_reach_properties_are_named_in_check_failures():
    assert conn.failure_property("bastion_host_key") == "bastion_host_key"


# -- logging in: what was tried ------------------------------------------------------------------
def test_refusal_names_every_method_tried(monkeypatch, tmp_path):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    keys = jump.credentials(SshTarget(host="h", private_key=None, auth_methods=("agent", "private_key")))
    assert list(keys.get_sources()) == []
    message = keys.refused()
    assert "SSH_AUTH_SOCK is not set" in message and "the private key (none is set" in message
    missing = str(tmp_path / "no-agent.sock")
    keys = jump.credentials(SshTarget(host="h", private_key=None, auth_methods=("agent",), agent_socket=missing))
    assert list(keys.get_sources()) == []
    assert f"the SSH agent at {missing} (it did not answer" in keys.refused()


def test_unknown_login_method_refused():
    with pytest.raises(RemoteError, match="login methods must be among"):
        jump.credentials(SshTarget(host="h", private_key=None, auth_methods=("password",)))


# -- one bastion connection per bastion, shared by the hosts behind it --------------------------
class _FakeSession:
    def __init__(self, log):
        self.log, self.active = log, True
        self._client = self
        self.client = self

    def get_transport(self):
        return self

    def is_active(self):
        return self.active

    def __exit__(self, *exc):
        self.active = False
        self.log.append("closed")


def _behind(bastion_host: str) -> SshTarget:
    return SshTarget(
        host="10.0.0.2",
        private_key="k",
        bastion=SshTarget(host=bastion_host, private_key="k", host_key=KEY),
        bastion_name="auth",
    )


@pytest.fixture
def opened(monkeypatch):
    log: list[str] = []

    def fake_open(target):
        log.append(f"open {target.bastion.host}")
        return _FakeSession(log)

    monkeypatch.setattr(jump, "_open_bastion", fake_open)
    monkeypatch.setattr(jump, "LINGER_SECONDS", 60.0)
    jump.close_all()
    yield log
    jump.close_all()


def test_hosts_behind_one_bastion_share_one_connection(opened):
    first, second = jump.Tunnel(_behind("10.0.0.3")), jump.Tunnel(_behind("10.0.0.3"))
    first.close()
    third = jump.Tunnel(_behind("10.0.0.3"))  # a later operation of the same run, while the first lingers
    second.close()
    third.close()
    assert opened == ["open 10.0.0.3"]
    jump.Tunnel(_behind("10.0.0.4")).close()
    assert opened == ["open 10.0.0.3", "open 10.0.0.4"]
    jump.close_all()
    assert opened.count("closed") == 2


def test_a_lost_bastion_connection_is_opened_again(opened):
    tunnel = jump.Tunnel(_behind("10.0.0.3"))
    tunnel.close()
    tunnel._shared.session.active = False
    jump.Tunnel(_behind("10.0.0.3")).close()
    assert opened == ["open 10.0.0.3", "closed", "open 10.0.0.3"]


def test_idle_bastion_connection_closes_after_the_linger(opened, monkeypatch):
    monkeypatch.setattr(jump, "LINGER_SECONDS", 0.05)
    jump.Tunnel(_behind("10.0.0.3")).close()
    time.sleep(0.3)
    assert opened == ["open 10.0.0.3", "closed"]


def test_one_private_address_behind_two_bastions_is_two_machines():
    bastions = {
        "jump-a": {"address": "192.0.2.9", "host_key": KEY},
        "jump-b": {"address": "198.51.100.9", "host_key": KEY},
    }
    raw = {
        "mx-a": {"address": "10.0.0.2", "host_key": KEY, "bastion": "jump-a"},
        "mx-b": {"address": "10.0.0.2", "host_key": KEY, "bastion": "jump-b"},
    }
    sites = {"a": {"postfix_host": "mx-a"}, "b": {"postfix_host": "mx-b"}}
    spec = parse_stack(raw, sites, bastions_raw=bastions)
    a, b = (reach_target(spec.hosts[n]) for n in ("mx-a", "mx-b"))
    assert a.identity == "10.0.0.2 via 192.0.2.9" and b.identity == "10.0.0.2 via 198.51.100.9"
    # Behind one bastion, the same address is one machine, refused as before.
    raw["mx-b"]["bastion"] = "jump-a"
    assert "are the same host" in refused(raw, sites, bastions)


def reach_target(host) -> SshTarget:
    props = {"host": host.address, "port": host.port, "host_key": host.host_key, "private_key": "k"}
    return conn.ssh_target({**props, **host_fields(host)})


@pytest.mark.parametrize("value", ["ten", "0", "-5", "nan", "inf"])
def test_a_bad_timeout_in_the_environment_names_the_variable_and_the_host(monkeypatch, value):
    from secure_postfix import provider

    monkeypatch.setenv("SECURE_POSTFIX_COMMAND_TIMEOUT", value)
    props = {"host": "10.0.0.2", "port": 22, "user": "root", "host_key": KEY, "private_key": "k", "host_name": "mx"}
    with pytest.raises(provider.ApplyError) as caught:
        provider.ssh_target(props)
    assert str(caught.value).startswith(f"mx (10.0.0.2): SECURE_POSTFIX_COMMAND_TIMEOUT={value!r} is not a number")
