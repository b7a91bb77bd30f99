"""sslyze, the TLS judge mail admins run against their servers, run against the test hosts.

sslyze lives in a virtualenv of its own (`.cache/judges`, from requirements-judges.txt; scripts/setup.sh builds
it): it needs a cryptography older than the project's. It is run as its command line is, with the bed's CA as the
trust store to check the chain against (`--certinfo_ca_file`), and the target given as `NAME:PORT{ADDRESS}` so that
the name the certificate is checked for is the host's name while the connection goes to its address.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
JUDGES_PYTHON = PROJECT / ".cache" / "judges" / "bin" / "python"
SCAN_TIMEOUT = 240

# sslyze's names of the protocol versions, in its JSON.
VERSIONS = {
    "ssl_2_0_cipher_suites": "SSLv2",
    "ssl_3_0_cipher_suites": "SSLv3",
    "tls_1_0_cipher_suites": "TLSv1",
    "tls_1_1_cipher_suites": "TLSv1.1",
    "tls_1_2_cipher_suites": "TLSv1.2",
    "tls_1_3_cipher_suites": "TLSv1.3",
}


@dataclass(frozen=True)
class Target:
    name: str  # the host name the certificate must name
    address: str
    port: int
    starttls: bool  # STARTTLS in SMTP (25, 587), or TLS from the first byte (465)

    @property
    def label(self) -> str:
        return f"{self.name}:{self.port}"


@dataclass
class Verdict:
    """What sslyze said of one target: its Mozilla verdict and the facts it rests on."""

    target: Target
    compliant: bool | None  # None: the scan did not complete
    issues: dict[str, str] = field(default_factory=dict)  # criterion -> sslyze's words
    accepted: dict[str, list[str]] = field(default_factory=dict)  # protocol version -> accepted suites (IANA)
    chain_verified: bool = False
    console: str = ""

    def summary(self) -> str:
        """One paragraph, as sslyze says it: for the run's log and the notes."""
        head = {True: "OK - Compliant", False: "FAILED - Not compliant", None: "ERROR - scan incomplete"}
        lines = [f"{self.target.label}: {head[self.compliant]}"]
        lines += [f"  * {k}: {v}" for k, v in self.issues.items()]
        return "\n".join(lines)


def available() -> bool:
    return JUDGES_PYTHON.exists()


def judge(targets: Sequence[Target], ca: Path, mozilla: str = "intermediate") -> dict[str, Verdict]:
    """Each target scanned by its own sslyze process, all at once; verdicts by target label."""
    with tempfile.TemporaryDirectory(prefix="sslyze-") as scratch:
        runs = []
        for index, target in enumerate(targets):
            out = Path(scratch) / f"{index}.json"
            command = [
                str(JUDGES_PYTHON), "-m", "sslyze", f"--mozilla_config={mozilla}", f"--certinfo_ca_file={ca}",
                f"--json_out={out}", *(["--starttls=smtp"] if target.starttls else []),
                f"{target.name}:{target.port}{{{target.address}}}",
            ]  # fmt: skip
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            runs.append((target, out, process))
        verdicts = {}
        for target, out, process in runs:
            try:
                console, _ = process.communicate(timeout=SCAN_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                console, _ = process.communicate()
            verdicts[target.label] = _verdict(target, console, out)
    return verdicts


def _verdict(target: Target, console: str, out: Path) -> Verdict:
    verdict = Verdict(target, compliant=None, console=console)
    if re.search(r": OK - Compliant\.", console):
        verdict.compliant = True
    elif re.search(r": FAILED - Not compliant\.", console):
        verdict.compliant = False
    verdict.issues = dict(re.findall(r"^\s+\* (\w+): (.*)$", console, re.MULTILINE))
    if not out.exists():
        return verdict
    results = json.loads(out.read_text()).get("server_scan_results") or []
    scan = (results[0].get("scan_result") or {}) if results else {}
    for key, version in VERSIONS.items():
        result = (scan.get(key) or {}).get("result") or {}
        if result.get("is_tls_version_supported"):
            verdict.accepted[version] = [s["cipher_suite"]["name"] for s in result.get("accepted_cipher_suites", [])]
    deployments = (((scan.get("certificate_info") or {}).get("result") or {}).get("certificate_deployments")) or []
    verdict.chain_verified = bool(deployments) and all(d.get("verified_certificate_chain") for d in deployments)
    return verdict
