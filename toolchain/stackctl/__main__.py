"""`python -m toolchain.stackctl [--stack NAME] PULUMI-ARGS...`: runs `pulumi PULUMI-ARGS --stack NAME` in this project.

`python -m toolchain.stackctl env [--stack NAME]` prints the same environment as shell `export` lines, for plain
`pulumi` commands: `eval "$(.venv/bin/python -m toolchain.stackctl env)"`.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys

from toolchain.stackctl.engine import PROJECT_DIR, EngineSettings, ensure_stack, pulumi_bin


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolchain.stackctl", description=__doc__)
    parser.add_argument("--stack", default="local")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the pulumi command, e.g. preview --diff")
    ns = parser.parse_args(argv)
    if ns.args[:1] == ["env"]:
        ns = parser.parse_args([a for a in argv if a != "env"])
        settings = EngineSettings.for_stack(ns.stack)
        if settings.backend_url is None:
            # The file backend must exist before `pulumi stack select --create`, the README's next step.
            settings.state_dir.mkdir(parents=True, exist_ok=True)
        for key, value in sorted(settings.cli_vars().items()):
            print(f"export {key}={shlex.quote(value)}")
        return 0
    settings = EngineSettings.for_stack(ns.stack)
    if not ns.args:
        parser.error("give a pulumi command, e.g. preview --diff")
    env = settings.cli_env()
    ensure_stack(ns.stack, settings, env)
    command = [str(pulumi_bin()), *ns.args, "--stack", ns.stack]
    print("+ pulumi " + shlex.join(command[1:]), file=sys.stderr, flush=True)
    return subprocess.run(command, cwd=PROJECT_DIR, env=env).returncode


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]) if len(sys.argv) > 1 else cli(["--help"]))
