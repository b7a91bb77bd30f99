"""Entry point of `pulumi-resource-pulumi-python` (scripts/setup.sh installs a wrapper that runs this file)."""

import sys
from pathlib import Path

if not __package__:
    # Run as a file, Python puts toolchain/providerhost/ itself on sys.path; the package lives one level up.
    # server.main() then puts the program's folder first, as `python -m pulumi.dynamic` has it.
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from toolchain.providerhost.server import main

if __name__ == "__main__":
    sys.exit(main())
