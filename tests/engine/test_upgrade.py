"""State written by the previous release, then this release's code: no replace, no delete, and on the hosts only
what this release does differently: smtpd_relay_restrictions managed by default, the TLS key and certificate in
one pair file instead of two, and the TLS policy's default levels written for smtpd and smtp."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile

import pytest

from secure_postfix.core.postfix_features import RELAY_RESTRICTIONS_DEFAULT, TLS_DEFAULTS, tls_directives
from tests.engine import fault_support as fs
from tests.engine.harness import bed_config
from tests.engine.test_pulumi_cli import CliProject
from tests.tls_files import make_cert
from toolchain.stackctl.engine import PROJECT_DIR

pytestmark = pytest.mark.engine

# The last release before host names in messages (the `host_name` input) and the relay setting.
PREVIOUS = "90eddac"
# The last release that kept each PostfixConfig's verdicts (the `compliance` map) in state.
STORED_VERDICTS = "ceac7fa"
HOSTS = ("mx", "edge")


def previous_release(root, commit: str, paths: tuple[str, ...] = ("components", "__main__.py")) -> None:
    """The program as `commit` had it (by default its `components` package and `__main__.py`), in place of this
    one."""
    archive = subprocess.run(
        ["git", "archive", commit, *paths],
        cwd=PROJECT_DIR,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    for path in paths:
        shutil.rmtree(root / path, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")


def this_release(root) -> None:
    """This checkout's program: the `secure_postfix` package, `__main__.py`, and the `components` shim that
    keeps the provider references in older state loading."""
    for name in ("secure_postfix", "components"):
        shutil.rmtree(root / name, ignore_errors=True)
        shutil.copytree(PROJECT_DIR / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT_DIR / "__main__.py", root / "__main__.py")


def test_previous_state_updates_in_place_and_leaves_hosts_as_they_were(testbed, tmp_path):
    cli = CliProject(tmp_path / "upgrade", "upgrade")
    previous_release(cli.root, PREVIOUS)
    cert, key = make_cert(tmp_path / "tls", testbed.hosts[HOSTS[0]].hostname)
    tls = {"cert_file": str(cert), "key_file": str(key)}
    sites = {"u": {"postfix_hosts": list(HOSTS), "limits": {"message_size_limit": 4194304}, "tls": tls}}
    cli.configure(bed_config(testbed, sites, list(HOSTS)))
    cli.ok("up", "--yes")
    written = {h: fs.digests(testbed, h) for h in HOSTS}
    main_cf = {h: testbed.read_file(h, fs.MAIN_CF).decode().splitlines() for h in HOSTS}
    # The upgrade: this release's code over the previous release's state.
    this_release(cli.root)
    preview = json.loads(cli.ok("preview", "--json"))
    ops = {step["op"] for step in preview.get("steps", [])}
    assert not ops & {"replace", "create-replacement", "delete-replaced", "delete", "create"}, ops
    assert "host_name" in json.dumps(preview["steps"]), "the new input was not planned"
    cli.ok("up", "--yes")
    for host in HOSTS:
        assert fs.digests(testbed, host)[fs.MASTER_CF] == written[host][fs.MASTER_CF], host
        # The certificate and key, one file each before, are one pair file now; the old files are gone.
        listing = testbed.run(host, "ls -a /etc/postfix/tls; stat -c '%a' " + fs.PAIR).stdout.split()
        assert listing == [".", "..", "secure-postfix.pem", "600"], (host, listing)
        # main.cf: the relay directive this release manages by default is set (Debian's own line for it, ending in
        # defer_unauth_destination, gives way) and both TLS file names point at the pair file; every other line as
        # it was.
        # The TLS policy's default levels (a previous state has no policy keys: they get the defaults).
        lines = testbed.read_file(host, fs.MAIN_CF).decode().splitlines()
        added = sorted(ln for ln in lines if ln not in main_cf[host])
        removed = [ln for ln in main_cf[host] if ln not in lines]
        pair = ("smtpd_tls_cert_file", "smtpd_tls_key_file")
        policy = {k: v for k, v in tls_directives(TLS_DEFAULTS).items() if k not in pair}
        changed = ("smtpd_relay_restrictions =", "smtpd_tls_cert_file =", "smtpd_tls_key_file =")
        changed += tuple(f"{k} =" for k in policy)
        assert all(ln.startswith(changed) for ln in removed), removed
        wanted = {
            "smtpd_relay_restrictions": RELAY_RESTRICTIONS_DEFAULT,
            "smtpd_tls_cert_file": fs.PAIR,
            "smtpd_tls_key_file": fs.PAIR,
            **policy,
        }
        # A value the host already had (Debian writes `smtp_tls_security_level=may`) keeps its own line.
        before = dict(
            (name.strip(), value.strip())
            for name, _, value in (ln.partition("=") for ln in main_cf[host] if ln[:1].isalpha())
        )
        assert added == sorted(f"{k} = {v}" for k, v in wanted.items() if before.get(k) != v), added
    # Then a plain run: nothing left to change.
    again = json.loads(cli.ok("preview", "--json"))
    assert {step["op"] for step in again.get("steps", [])} <= {"same"}, again.get("steps")
    cli.ok("destroy", "--yes")


def postfix_outputs(cli: CliProject) -> dict:
    resources = json.loads(cli.ok("stack", "export"))["deployment"]["resources"]
    (postfix,) = [r for r in resources if r["type"].endswith(":PostfixConfig")]
    return postfix["outputs"]


def test_stored_verdicts_leave_the_state_without_a_change(testbed, tmp_path):
    cli = CliProject(tmp_path / "verdicts", "verdicts")
    previous_release(cli.root, STORED_VERDICTS, ("secure_postfix", "__main__.py"))
    host = HOSTS[0]
    cli.configure(
        bed_config(testbed, {"v": {"postfix_hosts": [host], "limits": {"message_size_limit": 4194304}}}, [host])
    )
    cli.ok("up", "--yes")
    assert "compliance" in postfix_outputs(cli), "the previous release stores no verdicts: pick another"
    written = fs.digests(testbed, host)
    this_release(cli.root)
    preview = json.loads(cli.ok("preview", "--json"))
    assert {step["op"] for step in preview.get("steps", [])} <= {"same"}, preview.get("steps")
    cli.ok("refresh", "--yes")
    outputs = postfix_outputs(cli)
    assert "compliance" not in outputs and outputs["main_cf"]["message_size_limit"] == "4194304", outputs
    again = json.loads(cli.ok("preview", "--json"))
    assert {step["op"] for step in again.get("steps", [])} <= {"same"}, again.get("steps")
    assert fs.digests(testbed, host) == written
    cli.ok("destroy", "--yes")
