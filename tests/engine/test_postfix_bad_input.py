"""Bad input is refused with the directive and host named, and the host is left as it was."""

from __future__ import annotations

import pytest

from tests.engine.harness import EngineProject, bed_config, sha256

pytestmark = pytest.mark.engine

HOST = "edge"


@pytest.fixture(scope="module")
def project(testbed, tmp_path_factory):
    project = EngineProject(tmp_path_factory.mktemp("bad"), "bad")
    yield project
    project.destroy()


def _state(testbed) -> str:
    return sha256(testbed.read_file(HOST, "/etc/postfix/main.cf"))


@pytest.mark.parametrize(
    ("site", "fragments"),
    [
        ({"limits": {"queue_minfree": 1000, "message_size_limit": 1048576}}, ["queue_minfree", "1572864"]),
        ({"limits": {"message_size_limit": -5}}, ["message_size_limit", "whole number"]),
        ({"directives": {"myhostname": "edge.testbed.invalid\nrelayhost = [192.0.2.1]"}}, ["myhostname", "newline"]),
        ({"directives": {"mesage_size_limit": "10"}}, ["mesage_size_limit", "not a parameter that Postfix knows"]),
        ({"limits": {"anvil_rate_time_unit": "soon"}}, ["anvil_rate_time_unit", "time value"]),
    ],
    ids=["queue_minfree-too-small", "negative-size", "newline", "unknown-directive", "bad-time"],
)
def test_preview_refuses_and_names_directive_and_host(testbed, project, site, fragments):
    before = _state(testbed)
    project.configure(bed_config(testbed, {"bad": {"postfix_host": HOST, **site}}, [HOST]))
    run = project.preview()
    assert not run.ok
    for fragment in [*fragments, testbed.hosts[HOST].address]:
        assert fragment in run.stderr, run.stderr
    assert project.up().ok is False
    assert _state(testbed) == before
    testbed.wait_smtp(HOST, timeout=5)


def test_invalid_tls_level_is_caught_by_the_probe_and_rolled_back(testbed, project):
    before = _state(testbed)
    project.configure(
        bed_config(
            testbed, {"bad": {"postfix_host": HOST, "directives": {"smtpd_tls_security_level": "bogus"}}}, [HOST]
        )
    )
    assert project.preview().ok  # postfix check passes this one: only the probe can tell
    run = project.up()
    assert not run.ok
    for fragment in ["smtpd_tls_security_level", testbed.hosts[HOST].address, "Invalid TLS level"]:
        assert fragment in run.stderr, run.stderr
    assert _state(testbed) == before
    # Postfix answers again at once: the rollback restarted it, lifting the throttle.
    testbed.wait_smtp(HOST, timeout=5)


def test_staged_check_refuses_what_only_the_hosts_postfix_knows(testbed, project):
    """No rule can know the host's accounts: `postfix -c STAGE check` on the staged copy refuses, main.cf untouched."""
    before = _state(testbed)
    banner = testbed.smtp_banner(HOST)
    directives = {"default_privs": "no-such-account"}
    project.configure(bed_config(testbed, {"bad": {"postfix_host": HOST, "directives": directives}}, [HOST]))
    assert project.preview().ok
    run = project.up()
    assert not run.ok
    for fragment in [testbed.hosts[HOST].address, "Postfix rejects the new main.cf", "Nothing was changed"]:
        assert fragment in run.stderr, run.stderr
    assert _state(testbed) == before
    assert testbed.smtp_banner(HOST) == banner  # the running smtpd still greets as before


def test_cross_field_rule_is_checked_again_with_the_hosts_own_value(testbed, project):
    """At preview message_size_limit is Postfix's default; the host's own 20480000 makes queue_minfree too small."""
    before = _state(testbed)
    testbed.run(HOST, "postconf -e message_size_limit=20480000")
    try:
        edited = _state(testbed)
        project.configure(bed_config(testbed, {"bad": {"postfix_host": HOST, "limits": {"queue_minfree": 15360000}}}))
        assert project.preview().ok
        run = project.up()
        assert not run.ok
        for fragment in [testbed.hosts[HOST].address, "queue_minfree", "30720000", "Nothing was changed"]:
            assert fragment in run.stderr, run.stderr
        assert _state(testbed) == edited
    finally:
        testbed.run(HOST, "postconf -X message_size_limit")
    assert _state(testbed) == before
