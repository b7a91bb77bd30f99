"""`python -m compliance --stack NAME [--markdown FILE] [--html FILE] [--json FILE]`: report of the stack's last state.

The state is read with `pulumi stack export` on the pinned CLI and the local file backend,
as stackctl runs it; nothing contacts the hosts. Run `python -m toolchain.stackctl --stack NAME refresh --yes` first for
the hosts' live values.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from compliance.state import report_from_deployment
from secure_postfix.core import compliance_render as render
from toolchain.stackctl.engine import LOCAL_PASSPHRASE, PROJECT_DIR, EngineSettings, pulumi_bin


def load(stack_name: str, work_dir: Path, state_dir: Path | None) -> dict:
    """`pulumi stack export` of the stack, in the environment stackctl gives the CLI (no secret is decrypted)."""
    settings = EngineSettings(
        work_dir=work_dir,
        state_dir=state_dir or work_dir / ".state",
        passphrase=LOCAL_PASSPHRASE if stack_name == "local" else None,
        backend_url=None if state_dir else os.environ.get("PULUMI_BACKEND_URL") or None,
    )
    done = subprocess.run(
        [str(pulumi_bin()), "stack", "export", "--stack", stack_name],
        cwd=work_dir,
        env=settings.cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise SystemExit(f"cannot read the state of stack {stack_name}: {done.stderr.strip()}")
    return json.loads(done.stdout)


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compliance", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="local")
    parser.add_argument("--markdown", type=Path, help="write the Markdown here (default: print it)")
    parser.add_argument("--html", type=Path, help="write the self-contained HTML page here")
    parser.add_argument(
        "--json", type=Path, help="write host -> rule ID -> status, value, source here (for scripts and dashboards)"
    )
    parser.add_argument("--work-dir", type=Path, default=PROJECT_DIR, help="the project folder (Pulumi.yaml)")
    parser.add_argument("--state-dir", type=Path, help="the file backend's folder (default: WORK_DIR/.state)")
    args = parser.parse_args(argv)
    report = report_from_deployment(load(args.stack, args.work_dir, args.state_dir))
    if not report:
        print(
            f"stack {args.stack}: no PostfixConfig with main.cf values in its state (run up first)",
            file=sys.stderr,
        )
        return 1
    text = render.markdown(report)
    if args.markdown:
        args.markdown.write_text(text)
    else:
        print(text)
    if args.html:
        args.html.write_text(render.html(report, title=f"Compliance report: stack {args.stack}"))
    if args.json:
        records = {host: {f.rule.id: f.record() for f in found} for host, found in report.items()}
        args.json.write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
