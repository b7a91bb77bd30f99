"""A refused stack config, as `pulumi preview` shows it: one `error:` line per problem, every problem at once, no
Python traceback, a failed exit, and no SSH login."""

from __future__ import annotations

import re

import pytest

from tests.engine.harness import bed_config, ssh_logins
from tests.engine.test_pulumi_cli import CliProject

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    return CliProject(tmp_path_factory.mktemp("config-errors"), "config-errors")


def refused(testbed, cli, change) -> tuple[str, list[str]]:
    config = bed_config(testbed, {"s": {"postfix_host": "mx", "limits": {"message_size_limit": 20480000}}})
    change(config)
    cli.configure(config)
    before = ssh_logins(testbed)
    run = cli.pulumi("preview", "--diff")
    text = run.stdout + run.stderr
    assert run.returncode != 0, text
    assert "Traceback" not in text and 'File "' not in text, text
    assert ssh_logins(testbed) == before
    return text, [line.strip() for line in text.splitlines() if line.strip().startswith("error:")]


def test_every_refused_host_is_named_on_an_error_line_of_its_own(testbed, cli):
    def two_bad_hosts(config):
        config["hosts"]["mx"]["insecure_ignore_host_key"] = "no"
        config["hosts"]["edge"]["port"] = "ssh"

    _text, errors = refused(testbed, cli, two_bad_hosts)
    flag = [e for e in errors if "secure-postfix:hosts.mx.insecure_ignore_host_key" in e]
    port = [e for e in errors if "secure-postfix:hosts.edge.port" in e]
    assert len(flag) == 1 and len(port) == 1, errors
    assert any("the stack config has 2 problems" in e for e in errors), errors


@pytest.mark.parametrize(
    ("kind", "change", "named"),
    [
        ("no-address", lambda c: c["hosts"]["edge"].pop("address"), "secure-postfix:hosts.edge.address"),
        ("unknown-host", lambda c: c["sites"]["s"].update(postfix_host="nowhere"), "secure-postfix:sites.s"),
        ("not-an-object", lambda c: c["sites"]["s"].update(limits=[1, 2]), "secure-postfix:sites.s.limits"),
        ("null-value", lambda c: c["sites"]["s"]["limits"].update(header_size_limit=None), "header_size_limit"),
        ("sasl-without-tls", lambda c: c["sites"]["s"].update(sasl={}), "secure-postfix:sites.s.sasl"),
    ],
)
def test_each_kind_of_refused_config_reads_as_an_error_line(testbed, cli, kind, change, named):
    _text, errors = refused(testbed, cli, change)
    assert any(named in e for e in errors), errors
    assert any(re.search(r"the stack config has 1 problem \(above\)", e) for e in errors), errors
