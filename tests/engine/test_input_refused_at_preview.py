"""Input that would weaken or break a host is refused at preview, by name, before any SSH login."""

from __future__ import annotations

import time

import pulumi
import pytest
from pulumi import automation as auto

from secure_postfix import Connection, MailSite, MailSiteArgs
from tests.engine.harness import EngineProject, bed_config, sha256
from tests.tls_files import make_cert
from toolchain.stackctl.engine import open_stack

pytestmark = pytest.mark.engine

HOST = "edge"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = EngineProject(tmp_path_factory.mktemp("refused"), "refused")
    yield project
    project.destroy()


def ssh_logins(testbed, host: str = HOST) -> int:
    time.sleep(0.2)  # sshd writes its log line just after the login
    return (testbed.hosts[host].root / "log" / "sshd.log").read_text(errors="replace").count("Accepted publickey")


def main_cf(testbed, host: str = HOST) -> str:
    return sha256(testbed.read_file(host, "/etc/postfix/main.cf"))


def refused_everywhere(project, fragments: list[str], stack_config: bool = True) -> str:
    """Preview and up both fail, naming every fragment; returns the preview's error text."""
    preview = project.preview()
    assert not preview.ok
    if stack_config:
        # Refused stack config reads as Pulumi's own errors do: no Python traceback around the message.
        assert "Traceback" not in preview.text, preview.text
    for fragment in fragments:
        assert fragment in preview.stderr, preview.stderr
    assert not project.up().ok
    return preview.stderr


FLAG = f"secure-postfix:hosts.{HOST}.insecure_ignore_host_key"


@pytest.mark.parametrize(
    ("flag", "fragments"),
    [
        ("no", [FLAG, "'no'"]),
        ("off", [FLAG, "'off'"]),
        ("False ", [FLAG, "'False '"]),
        # The exact word is read as false, so the unpinned host is refused for what it is.
        ("false", ["host_key: is required", "ssh-keyscan"]),
    ],
)
def test_text_false_for_insecure_ignore_host_key_is_refused_without_a_login(testbed, project, flag, fragments):
    """YAML 1.2 gives `no` to the program as text; bool("no") would have turned host-key checking off."""
    config = bed_config(testbed, {"one": {"postfix_host": HOST, "limits": {"default_process_limit": 90}}}, [HOST])
    config["hosts"][HOST] = {"address": testbed.hosts[HOST].address, "insecure_ignore_host_key": flag}
    project.configure(config)
    before, logins = main_cf(testbed), ssh_logins(testbed)
    refused_everywhere(project, fragments)
    assert ssh_logins(testbed) == logins  # nobody was asked for a host key, so no impostor could answer
    assert main_cf(testbed) == before


@pytest.mark.parametrize(
    ("site", "name"),
    [
        (
            {"limits": {"smtpd_client_connection_rate_limit": "1180591620717411303424"}},
            "smtpd_client_connection_rate_limit",
        ),
        ({"limits": {"default_process_limit": "\u0661\u0660\u0660"}}, "default_process_limit"),
        ({"directives": {"smtpd_recipient_limit": "1; reboot"}}, "smtpd_recipient_limit"),
        ({"directives": {"smtpd_recipient_limit": ""}}, "smtpd_recipient_limit"),
        (
            {"limits": {"smtpd_client_event_limit_exceptions": "$(touch /tmp/pwned)"}},
            "smtpd_client_event_limit_exceptions",
        ),
    ],
    ids=["2**70", "arabic-indic-digits", "number-and-junk", "empty-number", "dollar-junk"],
)
def test_values_postfix_cannot_read_are_refused_at_preview(testbed, project, site, name):
    """Each of these passed preview before; the first made every smtpd exit until the rollback."""
    project.configure(bed_config(testbed, {"one": {"postfix_host": HOST, **site}}, [HOST]))
    before, logins = main_cf(testbed), ssh_logins(testbed)
    refused_everywhere(project, [f"{HOST} ({testbed.hosts[HOST].address}): {name}: "])
    assert ssh_logins(testbed) == logins
    assert main_cf(testbed) == before
    testbed.wait_smtp(HOST, timeout=5)


# The example: closes the listener block and adds a passdb that takes any password.
INJECTION = "fe80::1%x\n  }\npassdb {\n  driver = static\n  args = nopassword=y\n}\nservice auth {\n  inet_listener x {"


def dovecot_files(testbed) -> str:
    """Every file under conf.d, names and contents (our file may not exist yet)."""
    listing = 'cd /etc/dovecot/conf.d && for f in *; do echo "== $f"; cat "$f"; done'
    return sha256(testbed.run("auth", listing).stdout.encode())


@pytest.mark.parametrize(
    ("sasl", "field"),
    [
        ({"listener": "inet", "bind_address": INJECTION}, "bind_address"),
        ({"listener": "inet", "auth_mechanisms": "plain\u2028login"}, "auth_mechanisms"),
    ],
    ids=["bind_address-injection", "mechanisms-line-separator"],
)
def test_dovecot_config_injection_is_refused_at_preview(testbed, project, tmp_path, sasl, field):
    cert, key = make_cert(tmp_path / "edge", testbed.hosts["edge"].hostname)
    site = {
        "postfix_host": "edge",
        "dovecot_host": "auth",
        "sasl": sasl,
        "tls": {"cert_file": str(cert), "key_file": str(key)},
    }
    project.configure(bed_config(testbed, {"one": site}, ["edge", "auth"]))
    before, edge_before, logins = dovecot_files(testbed), main_cf(testbed, "edge"), ssh_logins(testbed, "auth")
    refused_everywhere(project, [f"auth ({testbed.hosts['auth'].address}): {field}: "])
    assert dovecot_files(testbed) == before
    assert main_cf(testbed, "edge") == edge_before
    assert ssh_logins(testbed, "auth") == logins


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\x85"], ids=["U+2028", "U+2029", "U+0085"])
def test_line_separators_in_a_directive_are_refused_at_preview(testbed, project, char):
    """str.splitlines() splits at these: once in main.cf, refresh, update and destroy would misread it."""
    site = {"postfix_host": HOST, "directives": {"smtpd_banner": f"$myhostname ESMTP{char}relayhost = [192.0.2.1]"}}
    project.configure(bed_config(testbed, {"one": site}, [HOST]))
    before = main_cf(testbed)
    refused_everywhere(project, [f"{HOST} ({testbed.hosts[HOST].address}): smtpd_banner: ", f"U+{ord(char):04X}"])
    assert main_cf(testbed) == before


def test_a_secret_in_directives_is_refused_and_never_shown(testbed, project):
    """`pulumi config set --secret --path` inside sites: main.cf and state would hold it in plaintext."""
    secret = "s3cret-relay-password-4711"
    site = {"postfix_host": HOST, "directives": {"smtpd_helo_required": "yes"}}
    project.configure(bed_config(testbed, {"one": site}, [HOST]))
    table = f"inline:{{ [relay.example.com]:587=user:{secret} }}"
    key = "secure-postfix:sites.one.directives.smtp_sasl_password_maps"
    project.stack.set_config(key, auto.ConfigValue(table, secret=True), path=True)
    assert secret not in project.config_file.read_text()  # stored encrypted, as the user asked
    before, logins = main_cf(testbed), ssh_logins(testbed)
    text = refused_everywhere(project, ["secure-postfix:sites holds a secret value", "texthash:"])
    assert secret not in text
    assert ssh_logins(testbed) == logins
    assert main_cf(testbed) == before
    assert secret not in project.state_text()


def test_two_sites_sharing_one_dovecot_host_are_refused_naming_both(testbed, project, tmp_path):
    """Both would own auth's one Dovecot file: removing one site would delete the other's listener."""
    sites = {}
    for name, postfix, port in (("one", "mx", 12345), ("two", "edge", 12346)):
        cert, key = make_cert(tmp_path / name, testbed.hosts[postfix].hostname)
        sites[name] = {
            "postfix_host": postfix,
            "dovecot_host": "auth",
            "sasl": {"listener": "inet", "listen_port": port},
            "tls": {"cert_file": str(cert), "key_file": str(key)},
        }
    project.configure(bed_config(testbed, sites, ["mx", "edge", "auth"]))
    before, logins = dovecot_files(testbed), ssh_logins(testbed, "auth")
    refused_everywhere(
        project, ["secure-postfix:sites.one.dovecot_host (auth)", "secure-postfix:sites.two.dovecot_host (auth)"]
    )
    assert dovecot_files(testbed) == before
    assert ssh_logins(testbed, "auth") == logins


def test_the_example_stacks_placeholder_host_key_is_refused_at_preview(testbed, project):
    """Copied as a new user would: it used to pass preview and fail at up with 'Incorrect padding'."""
    config = bed_config(testbed, {"one": {"postfix_host": HOST, "limits": {"default_process_limit": 90}}}, [HOST])
    config["hosts"][HOST]["host_key"] = (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExample"
    )
    project.configure(config)
    logins = ssh_logins(testbed)
    named = f"{HOST} ({testbed.hosts[HOST].address}): host_key: "
    text = refused_everywhere(project, [named, "ssh-keyscan -t ed25519 HOST"])
    assert "property host_key value" in text  # Pulumi names the input too
    assert ssh_logins(testbed) == logins


def test_a_key_that_does_not_match_is_refused_without_showing_the_key(testbed, project, tmp_path):
    """Pulumi prints a named property's value in plaintext, secret or not: the key's property is never named."""
    cert, _ = make_cert(tmp_path / "a", testbed.hosts[HOST].hostname)
    _, other_key = make_cert(tmp_path / "b", testbed.hosts[HOST].hostname)
    site = {"postfix_host": HOST, "tls": {"cert_file": str(cert), "key_file": str(other_key)}}
    project.configure(bed_config(testbed, {"one": site}, [HOST]))
    text = refused_everywhere(project, ["tls_key_pem", "does not match the certificate"])
    key_body = other_key.read_text().splitlines()[1]
    assert key_body not in text
    assert key_body not in project.state_text()


def test_a_secret_output_handed_to_mail_site_is_refused_at_preview(testbed, tmp_path):
    """A library caller's secret Output in directives stops the program before any provider sees it."""
    secret = "s3cret-relay-password-0815"

    def program() -> None:
        host = testbed.hosts[HOST]
        table = pulumi.Output.secret(f"inline:{{ [relay.example.com]:587=user:{secret} }}")
        key = pulumi.Output.secret(testbed.client_key_path.read_text())
        connection = Connection(host=host.address, host_key=host.host_key, private_key=key)
        MailSite("lib", MailSiteArgs(postfix_hosts={HOST: connection}, directives={"smtp_sasl_password_maps": table}))

    project = EngineProject(tmp_path / "lib", "lib")
    project.configure({})
    project._stack = open_stack(project.stack_name, program, project.settings)
    before, logins = main_cf(testbed), ssh_logins(testbed)
    try:
        # Found only as the Output resolves, inside the SDK's serialisation, which adds its own traceback.
        text = refused_everywhere(
            project, ["sites.lib.directives.smtp_sasl_password_maps is a secret"], stack_config=False
        )
        assert secret not in text
        assert ssh_logins(testbed) == logins
        assert main_cf(testbed) == before
        assert secret not in project.state_text()
    finally:
        project.destroy()
