"""Entry point of `pulumi-language-python` (scripts/setup.sh installs a wrapper that runs this file)."""

import sys
from pathlib import Path

# Run as a file, Python puts toolchain/langhost/ itself on sys.path; the package lives one level up. PYTHONPATH is
# left alone on purpose: the program's interpreter inherits the environment.
sys.path[0] = str(Path(__file__).resolve().parents[2])

from toolchain.langhost.server import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
