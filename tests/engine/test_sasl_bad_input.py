"""SASL/TLS mistakes refused at preview (no host is touched), and one only Dovecot itself can catch."""

from __future__ import annotations

import pytest

from tests.engine.harness import EngineProject, bed_config, sha256
from tests.tls_files import make_cert

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def tls(testbed, tmp_path_factory):
    folder = tmp_path_factory.mktemp("badtls")
    cert, key = make_cert(folder / "a", testbed.hosts["edge"].hostname)
    _, other_key = make_cert(folder / "b", testbed.hosts["edge"].hostname)
    return {"cert_file": str(cert), "key_file": str(key), "other_key": str(other_key)}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = EngineProject(tmp_path_factory.mktemp("saslbad"), "saslbad")
    yield project
    project.destroy()


DOVECOT_TREE = "set -o pipefail; find /etc/dovecot -printf '%p %m %u:%g\\n' | sort; " + (
    "find /etc/dovecot -type f -print0 | sort -z | xargs -0 sha256sum"
)


def host_state(testbed) -> dict[str, str]:
    """main.cf of the Postfix host; names, modes, owners and contents of everything under /etc/dovecot."""
    dovecot = testbed.run("auth", DOVECOT_TREE).stdout
    assert "/etc/dovecot/dovecot.conf" in dovecot and "/etc/dovecot/conf.d/10-auth.conf" in dovecot, dovecot
    return {"edge": sha256(testbed.read_file("edge", "/etc/postfix/main.cf")), "auth": dovecot}


def dovecot_answers(testbed) -> bool:
    return "auth failed" in testbed.run("auth", "doveadm auth test nobody-here x; true").stdout


def site(files, **changes) -> dict:
    base = {
        "postfix_host": "edge",
        "dovecot_host": "auth",
        "sasl": {"listener": "inet"},
        "tls": {"cert_file": files["cert_file"], "key_file": files["key_file"]},
    }
    base.update(changes)
    return base


CASES = {
    "encrypt-on-public-mx": (
        lambda t: site(t, tls={"cert_file": t["cert_file"], "key_file": t["key_file"], "security_level": "encrypt"}),
        ["tls.security_level", "public MX"],
    ),
    "key-does-not-match-cert": (
        lambda t: site(t, tls={"cert_file": t["cert_file"], "key_file": t["other_key"]}),
        ["tls_key_pem", "does not match the certificate"],
    ),
    "unix-socket-across-hosts": (
        lambda t: site(t, sasl={"listener": "unix"}),
        ["secure-postfix:sites.bad.sasl.listener", "cannot cross machines"],
    ),
    "sasl-without-tls": (
        lambda t: {k: v for k, v in site(t).items() if k != "tls"},
        ["secure-postfix:sites.bad.sasl needs", "tls"],
    ),
    "unknown-mechanism": (
        lambda t: site(t, sasl={"listener": "inet", "auth_mechanisms": "plain bogusmech"}),
        ["auth_mechanisms", "bogusmech"],
    ),
    "all-interfaces": (
        lambda t: site(t, sasl={"listener": "inet", "bind_address": "0.0.0.0"}),
        ["bind_address", "all interfaces"],
    ),
    "old-tls": (
        lambda t: site(t, tls={"cert_file": t["cert_file"], "key_file": t["key_file"], "protocols": ">=TLSv1"}),
        ["tls.protocols"],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_preview_refuses(testbed, tls, project, case):
    make, fragments = CASES[case]
    before = host_state(testbed)
    project.configure(bed_config(testbed, {"bad": make(tls)}, ["edge", "auth"]))
    run = project.preview()
    assert not run.ok
    for fragment in fragments:
        assert fragment in run.stderr, run.stderr
    assert "PRIVATE KEY" not in run.text
    assert host_state(testbed) == before


def test_listener_that_cannot_bind_is_rolled_back(testbed, tls, project):
    """Port 22 of the auth host belongs to sshd: doveconf accepts it, Dovecot cannot listen there."""
    project.configure(bed_config(testbed, {"bad": site(tls, sasl={"listener": "inet", "listen_port": 22})}))
    before = host_state(testbed)
    run = project.up()
    assert not run.ok
    assert "is not Dovecot's auth service" in run.stderr or "listen(" in run.stderr, run.stderr
    assert "previous file was put back" in run.stderr
    assert host_state(testbed) == before
    # Dovecot still serves: its auth-client socket answers, and nothing listens on the refused port's behalf.
    assert dovecot_answers(testbed)


def test_staged_doveconf_check_refuses_before_any_change(testbed, tls, project):
    """A host whose own Dovecot config no longer parses: `doveconf -n` on the staged copy says so first."""
    broken = "/etc/dovecot/conf.d/98-broken-by-hand.conf"
    testbed.run("auth", f"echo 'broken_section {{' > {broken}")
    try:
        project.configure(bed_config(testbed, {"bad": site(tls)}, ["edge", "auth"]))
        before = host_state(testbed)
        run = project.up()
        assert not run.ok
        for fragment in ["doveconf rejects the new configuration", "broken_section", "Nothing was changed"]:
            assert fragment in run.stderr, run.stderr
        assert host_state(testbed) == before
    finally:
        testbed.run("auth", f"rm -f {broken}")
    assert dovecot_answers(testbed)


def test_dovecot_must_be_running(testbed, tls, project):
    testbed.run("auth", "doveadm stop >/dev/null 2>&1; sleep 0.3; ! pgrep -x dovecot")
    try:
        project.configure(bed_config(testbed, {"bad": site(tls)}, ["edge", "auth"]))
        before = host_state(testbed)
        run = project.up()
        assert not run.ok
        for fragment in [
            testbed.hosts["auth"].address,
            "Dovecot is not running; start it first",
            "Nothing was changed",
        ]:
            assert fragment in run.stderr, run.stderr
        assert host_state(testbed) == before
    finally:
        testbed.run("auth", "pgrep -x dovecot >/dev/null || dovecot </dev/null >/dev/null 2>&1")
    for _ in range(50):
        if dovecot_answers(testbed):
            break
        testbed.run("auth", "sleep 0.1")
    assert dovecot_answers(testbed)
