#!/usr/bin/env bash
# Compiles the hashed locks from scripts/requirements/*.in (run after changing a pin there):
#   requirements.txt      what a program using secure-postfix needs at run time (the workflows install only this)
#   requirements-dev.txt  test, lint and benchmark tools, on top of it (setup installs both)
#   requirements-judges.txt  the TLS judge of the tests (sslyze), in a virtualenv of its own (.cache/judges):
#                         its cryptography pin (< 47) cannot live beside the project's
# Every file of every pinned version gets its hash, so `pip install --require-hashes` refuses anything else.
set -euo pipefail
cd "$(dirname "$0")/requirements"
PIP_TOOLS=pip-tools==7.5.2
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools"
"$tools/bin/pip" install -q "$PIP_TOOLS"
compile() {
  env -u PIP_FIND_LINKS "$tools/bin/pip-compile" -q --generate-hashes --allow-unsafe --strip-extras \
    --no-emit-index-url --no-emit-find-links --output-file "$2" "$1"
}
compile runtime.in ../../requirements.txt
compile dev.in ../../requirements-dev.txt
compile judges.in ../../requirements-judges.txt
