"""`python -m stackctl up|preview|refresh|destroy [--stack NAME] [--diff]`: the CLI verbs, inline."""

from __future__ import annotations

import argparse
import sys
import time

from pulumi import automation as auto

from components.program import main as program
from stackctl.engine import LOCAL_PASSPHRASE, EngineSettings, open_stack


def run(verb: str, stack_name: str, diff: bool) -> int:
    passphrase = LOCAL_PASSPHRASE if stack_name == "local" else None
    stack = open_stack(stack_name, program, EngineSettings(passphrase=passphrase))
    started = time.monotonic()
    out = print
    try:
        if verb == "preview":
            stack.preview(diff=diff, on_output=out)
        elif verb == "up":
            stack.up(diff=diff, on_output=out, show_secrets=False)
        elif verb == "refresh":
            stack.refresh(on_output=out, show_secrets=False)
        elif verb == "destroy":
            stack.destroy(on_output=out, show_secrets=False)
    except auto.CommandError as exc:
        # stdout was already shown through on_output; the diagnostics are in stderr.
        print(getattr(exc, "stderr", None) or exc, file=sys.stderr)
        return 1
    print(f"{verb} on stack {stack_name} took {time.monotonic() - started:.1f} s")
    return 0


def cli() -> int:
    parser = argparse.ArgumentParser(prog="python -m stackctl", description=__doc__)
    parser.add_argument("verb", choices=["preview", "up", "refresh", "destroy"])
    parser.add_argument("--stack", default="local")
    parser.add_argument("--diff", action="store_true", help="show each property's change")
    args = parser.parse_args()
    return run(args.verb, args.stack, args.diff)


if __name__ == "__main__":
    sys.exit(cli())
