"""The library's front door: what `import secure_postfix` gives, how a connection is taken, and the stack grammar
held to the Args' declarations."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
from pathlib import Path

import pytest

import secure_postfix
from secure_postfix import args as library
from secure_postfix import connection as conn
from secure_postfix.core import dovecot_conf as dc
from secure_postfix.core import postfix_features as features
from secure_postfix.core.postfix_rules import DOS_DIRECTIVES
from secure_postfix.core.problem import InputError
from secure_postfix.provider import moved_provider_only
from secure_postfix.stack import config as grammar

PACKAGE = Path(secure_postfix.__file__).parent
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def test_the_package_names_each_resource_with_its_args():
    for resource in ("PostfixConfig", "DovecotAuthService", "PostfixServices", "MailSite"):
        assert resource in secure_postfix.__all__ and f"{resource}Args" in secure_postfix.__all__
    for name in secure_postfix.__all__:
        assert getattr(secure_postfix, name) is not None
    assert (PACKAGE / "py.typed").exists()


@pytest.mark.parametrize("cls", [*library.PUBLIC_ARGS, secure_postfix.MailSiteArgs], ids=lambda c: c.__name__)
def test_every_field_of_every_args_has_a_doc(cls):
    names = [f.name for f in dataclasses.fields(cls)]
    docs = library.docs_of(cls)
    assert [n for n in names if not docs.get(n)] == []
    assert cls.__doc__


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_pure_core_imports_no_pulumi_and_no_ssh():
    for path in sorted((PACKAGE / "core").glob("*.py")):
        outside = {m for m in _imports(path) if m.split(".")[0] in ("pulumi", "paramiko", "secure_postfix")}
        assert {m for m in outside if not m.startswith("secure_postfix.core")} == set(), path.name


def test_no_resource_module_imports_the_stack_grammar():
    for path in sorted(PACKAGE.glob("*.py")) + sorted((PACKAGE / "remote").glob("*.py")):
        assert not {m for m in _imports(path) if m.startswith("secure_postfix.stack")}, path.name


# -- one declaration of each default: the stack grammar agrees with the library's Args ------------------


def _defaults(cls) -> dict:
    return {
        f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING and f.name != "path"
    }


@pytest.mark.parametrize(
    ("spec", "args"),
    [
        (grammar.SaslSpec, library.SaslWiring),
        (grammar.SaslSpec, library.DovecotAuthServiceArgs),
        (grammar.TlsSpec, library.TlsSettings),
        (grammar.SiteSpec, library.PostfixConfigArgs),
        (grammar.SiteSpec, secure_postfix.MailSiteArgs),
        (grammar.HostSpec, conn.Connection),
    ],
    ids=lambda c: c.__name__,
)
def test_the_stack_grammar_defaults_are_the_args_defaults(spec, args):
    mine, theirs = _defaults(spec), _defaults(args)
    # None in the Args means "the core's default applies", which the grammar spells out.
    shared = {k for k in set(mine) & set(theirs) if theirs[k] is not None}
    assert shared, "nothing in common to compare"
    assert {k: mine[k] for k in shared} == {k: theirs[k] for k in shared}


def test_the_defaults_are_the_core_constants():
    assert (
        library.SaslWiring().security_options
        == features.SASL_DEFAULTS["security_options"]
        == "noanonymous, noplaintext"
    )
    assert library.TlsSettings().protocols == features.TLS_DEFAULTS["protocols"] == ">=TLSv1.2"
    assert library.DovecotAuthServiceArgs(connection={}).auth_mechanisms == dc.DEFAULT_MECHANISMS
    assert {f.name for f in dataclasses.fields(library.Limits)} == set(DOS_DIRECTIVES)


def test_settings_left_out_of_state_take_the_declared_default():
    assert library.SaslWiring.from_props({"path": "private/auth", "security_options": ""}) == library.SaslWiring(
        path="private/auth"
    )
    assert library.TlsSettings.from_props({"cert_pem": "C", "public_mx": False}).security_level == "may"


def test_limits_become_the_limits_property():
    limits = library.Limits(message_size_limit=4194304, anvil_rate_time_unit="60s")
    assert library.limits_props(limits) == {"anvil_rate_time_unit": "60s", "message_size_limit": 4194304}


# -- connections taken whole ------------------------------------------------------------------------------


def _plain(props: dict) -> dict:
    return {k: v for k, v in props.items() if k not in conn.SECRET_FIELDS}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_pulumi_command_proxy_becomes_the_bastion():
    from pulumi_command.remote import ConnectionArgs, ProxyConnectionArgs

    async def run():
        jump = ProxyConnectionArgs(host="192.0.2.9", port=2222, user="hop", host_key=KEY)
        given = ConnectionArgs(host="10.0.0.5", private_key="K", host_key=KEY, proxy=jump)
        return _plain(conn.connection_props(given))

    assert asyncio.run(run()) == {
        "host": "10.0.0.5",
        "port": 22,
        "user": "root",
        "host_key": KEY,
        "bastion_name": "192.0.2.9",
        "bastion_host": "192.0.2.9",
        "bastion_port": 2222,
        "bastion_user": "hop",
        "bastion_host_key": KEY,
        "bastion_insecure_ignore_host_key": False,
        "insecure_ignore_host_key": False,
        "use_sudo": False,
    }


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"password": "pw"}, "10.0.0.5: connection.password is not supported"),
        ({"dial_error_limit": 3}, "10.0.0.5: connection.dial_error_limit is not supported"),
        ({"per_dial_timeout": 5}, "10.0.0.5: connection.per_dial_timeout is not supported: set SECURE_POSTFIX_CONNECT"),
        ({"proxy": {"host": "b", "password": "pw"}}, "10.0.0.5: connection.proxy.password is not supported"),
    ],
)
def test_a_connection_field_the_project_cannot_honour_is_refused_by_name(fields, words):
    from pulumi_command.remote import ConnectionArgs

    with pytest.raises(InputError) as refused:
        conn.connection_props(ConnectionArgs(host="10.0.0.5", **fields))
    assert words in str(refused.value)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_pulumi_commands_own_defaults_are_not_a_choice():
    from pulumi_command.remote import ConnectionArgs

    assert _plain(conn.connection_props(ConnectionArgs(host="10.0.0.5")))["host"] == "10.0.0.5"


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ({"host": "h", "hostname": "x"}, "h: connection.hostname is not a connection field"),
        ({"host": "h", "proxy": {"host": "b", "proxy": {"host": "c"}}}, "h: connection.proxy.proxy: one bastion"),
        ({"host": "h", "private_key": "A", "proxy": {"host": "b", "private_key": "B"}}, "connection.proxy.private_key"),
        ({"host": "h", "proxy": {"host": "b", "use_sudo": True}}, "connection.proxy.use_sudo"),
    ],
)
def test_what_a_connection_cannot_mean_is_refused_not_dropped(given, words):
    async def run():
        conn.connection_props(given)

    with pytest.raises(InputError) as refused:
        asyncio.run(run())
    assert words in str(refused.value)


def test_an_agent_socket_without_a_key_logs_in_with_the_agent():
    props = conn.connection_props({"host": "h", "agent_socket_path": "/run/agent.sock"})
    assert props["ssh_auth"] == ["agent"] and conn.ssh_target(props).auth_methods == ("agent",)


# -- an upgrade that moves the provider's class plans nothing ----------------------------------------------


@pytest.mark.parametrize(
    ("olds", "news", "moved_only"),
    [
        ({"__provider": "old", "host": "h", "originals": {"x": 1}}, {"__provider": "new", "host": "h"}, True),
        ({"__provider": "old", "host": "h"}, {"__provider": "new", "host": "g"}, False),
        ({"__provider": "old", "host": "h", "public_mx": False}, {"__provider": "new", "host": "h"}, False),
        ({"__provider": "same", "host": "h"}, {"__provider": "same", "host": "h"}, False),
        ({"__provider": "old", "port": 22.0}, {"__provider": "new", "port": 22}, True),
    ],
)
def test_only_a_moved_provider_is_no_change(olds, news, moved_only):
    assert moved_provider_only(olds, news, ("originals",)) is moved_only


def test_the_reference_page_is_made_from_the_declarations():
    from secure_postfix.reference import reference_markdown

    page = Path(secure_postfix.__file__).parents[1] / "docs" / "reference.md"
    assert page.read_text() == reference_markdown(), "run `make reference` and commit docs/reference.md"
