"""A certificate that lives on the host and is renewed there, as an ACME client renews it, reaches Postfix with no
`pulumi up`: the renewal hook `up` installed checks it, swaps it in, reloads and probes; a key that does not match
is refused and the old certificate stays served; refresh then plans nothing, and the compliance report watches the
new certificate (an expiring one fails its cell). Destroy gives the host back byte for byte.

The ACME client is played by a script doing what certbot does on renewal (`--config-dir` in root's home, which is
each test host's own): new files in archive/, the live/ links moved to them, then every deploy hook run with
RENEWED_LINEAGE.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shlex

import pytest

from compliance.state import report_from_deployment
from secure_postfix.core import compliance_render
from secure_postfix.core.compliance import Status, report_of_props
from tests.engine import mail_client
from tests.engine.harness import EngineProject, bed_config, planned
from tests.tls_files import make_pair
from toolchain.testbed.layout import SUBNET

pytestmark = pytest.mark.engine

HOST = "mx"
ACME = "/root/letsencrypt"
LINEAGE = f"{ACME}/live/{HOST}"
HOOK = f"{ACME}/renewal-hooks/deploy/secure-postfix"
PAIR = "/etc/postfix/tls/secure-postfix.pem"
SNAPSHOT = (
    f"find /etc/postfix {ACME} -printf '%p %m %u:%g %l\\n' | sort; "
    f"find /etc/postfix {ACME} -type f -print0 | sort -z | xargs -0 sha256sum"
)
# certbot's renewal, in the order it does it: new numbered files in archive/, the live/ links moved, the deploy hooks.
RENEW = r"""
set -eu
acme=$1 name=$2 n=$3
echo "$4" | base64 -d > "$acme/archive/$name/fullchain$n.pem"
(umask 077; echo "$5" | base64 -d > "$acme/archive/$name/privkey$n.pem")
for f in fullchain privkey; do ln -sfn "../../archive/$name/$f$n.pem" "$acme/live/$name/$f.pem"; done
status=0
for hook in "$acme"/renewal-hooks/deploy/*; do
  [ -x "$hook" ] || continue
  RENEWED_LINEAGE="$acme/live/$name" RENEWED_DOMAINS="$name" "$hook" || status=$?
done
exit $status
"""


def site() -> dict:
    tls = {
        "host_cert_file": f"{LINEAGE}/fullchain.pem",
        "host_key_file": f"{LINEAGE}/privkey.pem",
        "renewal_hook": HOOK,
    }
    return {"solo": {"postfix_host": HOST, "tls": tls}}


def issue(testbed, n: int, days: int = 90, key_of: str | None = None):
    """certbot's renewal number `n`: a certificate for the host (and its key, or another key with `key_of`)."""
    cert, key = make_pair(testbed.hosts[HOST].hostname, days)
    files = [base64.b64encode(t.encode()).decode() for t in (cert, key_of or key)]
    done = testbed.run(HOST, shlex.join(["sh", "-c", RENEW, "sh", ACME, HOST, str(n), *files]), check=False)
    return cert, done


def served(testbed) -> str:
    """The fingerprint a STARTTLS client sees on port 25, as `openssl x509 -fingerprint -sha256` prints it."""
    client = mail_client.connect(testbed.hosts[HOST].address, f"{SUBNET}131")
    try:
        client.starttls(context=mail_client.tls_context())
        der = client.sock.getpeercert(binary_form=True)
    finally:
        client.close()
    return hashlib.sha256(der).hexdigest().upper()


def fingerprint(pem: str) -> str:
    from secure_postfix.core.certificates import read_leaf

    return read_leaf(pem).fingerprint.replace(":", "")


def postfix_outputs(project) -> dict:
    (resource,) = [r for r in project.export()["resources"] if r["urn"].endswith("::solo-postfix")]
    return resource["outputs"]


@pytest.fixture(scope="module")
def bed(testbed, tmp_path_factory):
    testbed.run(HOST, f"mkdir -p {ACME}/archive/{HOST} {LINEAGE} {ACME}/renewal-hooks/deploy")
    first, done = issue(testbed, 1)
    assert done.returncode == 0, done.stderr  # no hook yet: the ACME client's own first issue
    before = testbed.run(HOST, SNAPSHOT).stdout
    project = EngineProject(tmp_path_factory.mktemp("renewal"), "renewal")
    project.configure(bed_config(testbed, {"solo": site()["solo"]}, [HOST]))
    up = project.up()
    assert up.ok, up.text
    yield project, first, before
    project.destroy()
    testbed.run(HOST, f"rm -rf {ACME}", check=False)


def test_up_serves_the_host_s_certificate_and_installs_the_hook(testbed, bed):
    project, first, _ = bed
    assert served(testbed) == fingerprint(first)
    modes = testbed.run(HOST, f"stat -c '%a %U' {HOOK} {PAIR}").stdout.split("\n")
    assert modes[:2] == ["700 root", "600 root"], modes
    outputs = postfix_outputs(project)
    assert outputs["certificate"]["fingerprint"].replace(":", "") == fingerprint(first)
    assert "BEGIN" not in json.dumps(outputs), "the state holds no PEM: it names the files on the host"


def test_a_renewal_on_the_host_is_served_without_up_and_refresh_finds_no_drift(testbed, bed):
    project, first, _ = bed
    second, done = issue(testbed, 2)
    assert done.returncode == 0, done.stderr
    assert "serving" in done.stderr, done.stderr
    assert served(testbed) == fingerprint(second) != fingerprint(first)
    again = project.preview(refresh=True)
    assert again.ok and planned(again) == {}, again.text
    refreshed = project.refresh()
    assert refreshed.ok, refreshed.text
    outputs = postfix_outputs(project)
    assert outputs["certificate"]["fingerprint"].replace(":", "") == fingerprint(second)
    # The verdicts PostfixConfig.compliance gives, judged on what the refresh stored.
    verdicts = report_of_props(outputs)
    assert verdicts["tls-certificate-expiry"].startswith("pass: "), verdicts
    assert verdicts["tls-certificate-names-host"].startswith("pass: "), verdicts


def test_a_renewal_whose_key_does_not_match_is_refused_and_the_old_certificate_stays(testbed, bed):
    before = served(testbed)
    pair = testbed.run(HOST, f"sha256sum {PAIR}").stdout
    _, other_key = make_pair("other.testbed.invalid")
    _, done = issue(testbed, 3, key_of=other_key)
    assert done.returncode != 0
    assert "does not match the certificate" in done.stderr and "keeps serving" in done.stderr, done.stderr
    assert served(testbed) == before
    assert testbed.run(HOST, f"sha256sum {PAIR}").stdout == pair


def test_an_expiring_certificate_turns_its_compliance_cell_to_fail(testbed, bed, tmp_path):
    project, _, _ = bed
    soon, done = issue(testbed, 4, days=5)
    assert done.returncode == 0, done.stderr
    assert served(testbed) == fingerprint(soon)
    assert project.refresh().ok
    cell = report_of_props(postfix_outputs(project))["tls-certificate-expiry"]
    assert cell.startswith("fail: ") and "renew it now" in cell, cell
    # The report from state (make compliance): the matrix cell of that rule is a failure.
    report = report_from_deployment(project.export())
    (findings,) = report.values()
    (finding,) = [f for f in findings if f.rule.id == "tls-certificate-expiry"]
    assert finding.status is Status.FAIL, finding
    page = compliance_render.html(report)
    assert 'data-rule="tls-certificate-expiry" data-status="fail"' in page


def test_destroy_removes_the_hook_and_gives_the_host_back_byte_for_byte(testbed, bed):
    project, _, before = bed
    # The ACME client's own files are its own: put back the first issue's links, as the snapshot had them.
    testbed.run(
        HOST,
        f"cd {LINEAGE} && ln -sfn ../../archive/{HOST}/fullchain1.pem fullchain.pem && "
        f"ln -sfn ../../archive/{HOST}/privkey1.pem privkey.pem && "
        f"rm -f {ACME}/archive/{HOST}/fullchain[234].pem {ACME}/archive/{HOST}/privkey[234].pem",
    )
    destroyed = project.destroy()
    assert destroyed.ok, destroyed.text
    assert testbed.run(HOST, SNAPSHOT).stdout == before
