"""`python -m bench`: times engine operations on the test bed and counts SSH logins per operation.

The baseline is what a generic remote-command tool does for the same eight
limits: one SSH connection per `postconf -e`, then one for `postfix reload`,
with no staging, no probe and no rollback. Both run in this one process, on
the same host, so the ratio is side by side.
"""

from __future__ import annotations

import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import testbed
from components.remote.ssh import Session, SshTarget
from tests.engine.harness import EngineProject, bed_config

HOST = "mx"
LIMITS = {
    "message_size_limit": 10240000,
    "header_size_limit": 102400,
    "queue_minfree": 15360000,
    "default_process_limit": 100,
    "smtpd_client_connection_rate_limit": 30,
    "smtpd_client_message_rate_limit": 60,
    "anvil_rate_time_unit": "60s",
    "smtpd_client_event_limit_exceptions": "$mynetworks",
}
ROUNDS = 3


def logins(bed: testbed.TestBed) -> int:
    """Successful SSH logins so far, from the host's own sshd log."""
    text = (bed.hosts[HOST].root / "log" / "sshd.log").read_text(errors="replace")
    return text.count("Accepted publickey")


def measure(bed: testbed.TestBed, label: str, action) -> tuple[float, int]:
    before = logins(bed)
    started = time.perf_counter()
    result = action()
    elapsed = time.perf_counter() - started
    if getattr(result, "ok", True) is False:
        sys.exit(f"{label} failed:\n{result.text}")
    time.sleep(0.2)  # sshd writes its log line asynchronously
    return elapsed, logins(bed) - before


def baseline(bed: testbed.TestBed) -> None:
    target = SshTarget(
        host=bed.hosts[HOST].address,
        private_key=bed.client_key_path.read_text(),
        host_key=bed.hosts[HOST].host_key,
    )
    for name, value in LIMITS.items():
        with Session(target) as s:
            s.run(["sh", "-c", f"postconf -e {shlex.quote(f'{name}={value}')}"])
    with Session(target) as s:
        s.run(["postfix", "reload"])


def restore(bed: testbed.TestBed, original: bytes) -> None:
    """Undo the baseline's edits (the host's /etc/postfix is this folder, bind-mounted)."""
    (bed.hosts[HOST].root / "etc" / "postfix" / "main.cf").write_bytes(original)
    bed.run(HOST, "postfix reload")


def main() -> int:
    bed = testbed.create()
    original = bed.read_file(HOST, "/etc/postfix/main.cf")
    rows: dict[str, list[tuple[float, int]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        project = EngineProject(Path(tmp), "bench")
        sites = {"bench": {"postfix_host": HOST, "limits": LIMITS}}
        project.configure(bed_config(bed, sites, [HOST]))
        for _ in range(ROUNDS):
            rows.setdefault("preview (first)", []).append(measure(bed, "preview", project.preview))
            rows.setdefault("up: 8 limits", []).append(measure(bed, "up", project.up))
            rows.setdefault("up: no change", []).append(measure(bed, "up", project.up))
            rows.setdefault("refresh", []).append(measure(bed, "refresh", project.refresh))
            rows.setdefault("destroy", []).append(measure(bed, "destroy", project.destroy))
            rows.setdefault("baseline: 8 x postconf -e + reload", []).append(
                measure(bed, "baseline", lambda: baseline(bed))
            )
            restore(bed, original)
    print(f"host {HOST} ({bed.hosts[HOST].address}), {ROUNDS} rounds, median wall time")
    print(f"{'operation':<40} {'seconds':>8} {'SSH logins':>11}")
    for label, values in rows.items():
        seconds = statistics.median(v[0] for v in values)
        connections = statistics.median(v[1] for v in values)
        print(f"{label:<40} {seconds:>8.2f} {connections:>11.0f}")
    ours = statistics.median(v[0] for v in rows["up: 8 limits"])
    base = statistics.median(v[0] for v in rows["baseline: 8 x postconf -e + reload"])
    print(f"ratio up / baseline: {ours / base:.2f} (ours also stages, validates, probes SMTP and records originals)")
    noop = statistics.median(v[0] for v in rows["up: no change"])
    print(f"ratio up-with-no-change / baseline: {noop / base:.2f} (no host is contacted when nothing changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
