#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian 12 machine, and does
# nothing when it is already there: Debian's daemons for the test hosts, the
# Python virtualenv, and a pinned Pulumi CLI built from the Go module proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PULUMI_VERSION=v3.259.0
# The workflow linter the tests run on .github/workflows.
ACTIONLINT_VERSION=v1.7.12
# The S3-compatible object store of the shared-state tests (SeaweedFS, Apache-2.0), pinned in toolchain/engine/seaweedfs/go.mod.
SEAWEEDFS_VERSION=v0.0.0-20261109003541-7506e5f91cd6
# Go only builds the pinned CLI. Without one on the machine, this toolchain comes from the Go module proxy,
# checked against the digest below.
GO_TOOLCHAIN=v0.0.1-go1.26.8.linux-amd64
GO_TOOLCHAIN_SHA256=30c2b1bf7dcc88d3eb0a1364e47ddd9128edb3110a30e8a0ef61cd5856b31de7
CACHE=$ROOT/.cache
BIN=$CACHE/bin
log() { printf 'setup: %s\n' "$*" >&2; }

apt_packages() {
  # chromium: the tests check the compliance report's HTML page in headless Chromium.
  # mmdebstrap: builds the root file systems of test hosts of other Debian releases (toolchain/testbed/rootfs.py).
  local wanted=(postfix dovecot-core openssh-server iproute2 openssl procps psmisc sudo curl ca-certificates chromium
    mmdebstrap)
  local missing=()
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  log "installing Debian packages: ${missing[*]}"
  # Postfix asks how it is used; the test hosts start from Debian's Internet Site defaults.
  echo "postfix postfix/main_mailer_type select Internet Site" | debconf-set-selections
  echo "postfix postfix/mailname string testbed.invalid" | debconf-set-selections
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

python_env() {
  # Both locks are hashed (scripts/lock.sh): pip refuses any file whose digest the lock does not list.
  local stamp=.venv/.requirements.sha
  local want
  want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
  if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return; fi
  log "creating the Python virtualenv (.venv)"
  if ! python3 -m venv .venv 2>/dev/null; then
    # Debian's own python3 needs python3-venv for this.
    rm -rf .venv
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv .venv
  fi
  .venv/bin/pip install -q --require-hashes -r requirements.txt -r requirements-dev.txt
  echo "$want" > "$stamp"
}

bytecode() {
  # What `pip install` does for an installed copy: with PYTHONDONTWRITEBYTECODE set, each provider plugin and
  # program would otherwise compile the project's modules from source at every engine command. A module edited
  # later is compiled from source again until the next setup (Python compares the times).
  .venv/bin/python -m compileall -q -j 0 secure_postfix toolchain compliance policy >/dev/null
}

judges_env() {
  # sslyze, the TLS judge the engine tests run (tests/engine/tls_judges.py), in a virtualenv of its own: sslyze
  # 6.3.1 needs cryptography < 47, the project runs on 50.0.2. Hashed like the other locks (scripts/lock.sh).
  local env=$CACHE/judges stamp=$CACHE/judges/.requirements.sha
  local want
  want=$(sha256sum < requirements-judges.txt | cut -d' ' -f1)
  if [ -x "$env/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return; fi
  log "creating the TLS judges' virtualenv (.cache/judges: sslyze)"
  rm -rf "$env"
  python3 -m venv "$env"
  "$env/bin/pip" install -q --require-hashes -r requirements-judges.txt
  echo "$want" > "$stamp"
}

release_trees() {
  # Root file systems of the Debian releases the engine tests start hosts of (tests/engine/test_testbed_releases.py),
  # built once with mmdebstrap into .cache/rootfs/ (1-2 minutes and 160-190 MB each). TESTBED_RELEASES="" skips them.
  local releases=${TESTBED_RELEASES-trixie bullseye}
  [ -n "$releases" ] || return 0
  local missing
  # shellcheck disable=SC2086  # a list of release names
  missing=$(.venv/bin/python -c 'import sys
from toolchain.testbed.rootfs import is_built
print(" ".join(r for r in sys.argv[1:] if not is_built(r)))' $releases)
  [ -n "$missing" ] || return 0
  log "building the root file systems of Debian $missing for test hosts (once)"
  # One build per release at once: each mostly waits on the archive, and one lock per release keeps them apart.
  local release pids=() failed=0
  for release in $missing; do
    .venv/bin/python -m toolchain.testbed rootfs "$release" >/dev/null &
    pids+=("$!")
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  [ "$failed" = 0 ] || { log "building a release's root file system failed (above)"; return 1; }
}

# Fixes applied to the CLI's source at build time: toolchain/engine/patches/FILE.sed edits one file of the pulumi/pkg module,
# named in PATCHED_FILES. The build uses a patched copy of the module (a `replace` in a go.mod of its own beside
# toolchain/engine/go.mod, through -modfile); the module cache and toolchain/engine/go.mod stay as they are.
PATCHED_FILES=(
  "display-errored-colorize.sed backend/display/diff.go"
)

patches_digest() {
  cat toolchain/engine/patches/*.sed | sha256sum | cut -d' ' -f1
}

patched_module() {
  # Writes $CACHE/engine.go.mod (and .sum): toolchain/engine/go.mod with pkg/v3 replaced by its patched copy.
  local source copy="$CACHE/pulumi-pkg-$PULUMI_VERSION" patch file
  source=$(cd toolchain/engine && GOFLAGS=-mod=readonly go mod download -json github.com/pulumi/pulumi/pkg/v3 \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$source" ] || { log "could not find the source of github.com/pulumi/pulumi/pkg/v3"; exit 1; }
  rm -rf "$copy"
  cp -r "$source" "$copy"
  chmod -R u+w "$copy"
  for entry in "${PATCHED_FILES[@]}"; do
    read -r patch file <<< "$entry"
    sed -i -f "toolchain/engine/patches/$patch" "$copy/$file"
    if cmp -s "$source/$file" "$copy/$file"; then
      log "toolchain/engine/patches/$patch changed nothing in $file: the patch no longer fits this CLI version"
      exit 1
    fi
  done
  cp toolchain/engine/go.mod "$CACHE/engine.go.mod"
  cp toolchain/engine/go.sum "$CACHE/engine.go.sum"
  printf '\nreplace github.com/pulumi/pulumi/pkg/v3 => %s\n' "$copy" >> "$CACHE/engine.go.mod"
}

pulumi_cli() {
  if pulumi_ready; then return; fi
  log "building the Pulumi CLI $PULUMI_VERSION with Go (a few minutes, once)"
  mkdir -p "$BIN"
  patched_module
  # -mod=readonly: every module comes from toolchain/engine/go.mod at the digest toolchain/engine/go.sum holds, or the build stops.
  (cd toolchain/engine && GOFLAGS=-mod=readonly go build -trimpath -modfile "$CACHE/engine.go.mod" \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
    -o "$BIN/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
  patches_digest > "$BIN/pulumi.patches"
}

python_plugin_shim() {
  # NAME ARGS: a plugin the official tarball ships as a small script that runs the program's interpreter with
  # ARGS: as the official one, the virtualenv the CLI names from the program's Pulumi.yaml
  # (PULUMI_RUNTIME_VIRTUALENV, relative to the program's folder), else PULUMI_PYTHON_CMD, else this checkout's.
  # A program of the user's own thus unpickles its resources' providers where it installed secure-postfix.
  # Rewritten only when its text changes.
  local shim=$BIN/$1
  local body
  body=$(printf '%s\n' '#!/bin/sh' \
    'venv=${PULUMI_RUNTIME_VIRTUALENV:-}' \
    'case $venv in ""|/*) ;; *) venv=$PWD/$venv ;; esac' \
    'if [ -n "$venv" ] && [ -x "$venv/bin/python" ]; then python=$venv/bin/python; else python=${PULUMI_PYTHON_CMD:-'"$ROOT/.venv/bin/python"'}; fi' \
    'exec "$python" -u '"$2")
  if [ "$(cat "$shim" 2>/dev/null)" = "$body" ]; then return; fi
  mkdir -p "$BIN"
  printf '%s\n' "$body" > "$shim"
  chmod 0755 "$shim"
}

plugin_shims() {
  # The dynamic provider: the SDK's own, served by providerhost with a thread pool the user sizes
  # (SECURE_POSTFIX_PROVIDER_THREADS) instead of `-m pulumi.dynamic`'s four workers.
  python_plugin_shim pulumi-resource-pulumi-python "\"$ROOT/toolchain/providerhost/__main__.py\" \"\$@\""
  # Without a Python language host (the inline runner), the CLI runs a Python policy pack through this plugin,
  # as the official tarball's script does: `python -m pulumi.policy ENGINE_ADDRESS PACK_DIR`.
  python_plugin_shim pulumi-analyzer-policy-python '-m pulumi.policy "$1" "$2"'
}

language_host() {
  # The CLI runs `runtime: python` projects through a plugin named pulumi-language-python, taken from
  # PATH before the one beside the CLI. A real one on PATH (an official Pulumi install) is left to be used.
  local host=$BIN/pulumi-language-python
  local found
  found=$(PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$BIN" | paste -sd: -) command -v pulumi-language-python || true)
  if [ -n "$found" ] && ! grep -q "toolchain/langhost/__main__.py" "$found"; then
    log "using the Python language host on PATH: $found"
    rm -f "$host"
    return
  fi
  local body
  body=$(printf '#!/bin/sh\nexec "%s" -u "%s" "$@"\n' "$ROOT/.venv/bin/python" "$ROOT/toolchain/langhost/__main__.py")
  if [ "$(cat "$host" 2>/dev/null)" = "$body" ]; then return; fi
  mkdir -p "$BIN"
  printf '%s\n' "$body" > "$host"
  chmod 0755 "$host"
}

actionlint_ready() {
  [ -x "$BIN/actionlint" ] && [ "$("$BIN/actionlint" -version 2>/dev/null | head -1)" = "$ACTIONLINT_VERSION" ]
}

actionlint_bin() {
  actionlint_ready && return
  log "building actionlint $ACTIONLINT_VERSION with Go"
  mkdir -p "$BIN"
  # Pinned with its dependencies by toolchain/engine/actionlint/go.mod and go.sum (the version there is ACTIONLINT_VERSION).
  (cd toolchain/engine/actionlint && GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w" -o "$BIN/actionlint" \
    github.com/rhysd/actionlint/cmd/actionlint)
}

weed_ready() {
  [ -x "$BIN/weed" ] && [ "$(cat "$BIN/weed.version" 2>/dev/null)" = "$SEAWEEDFS_VERSION" ]
}

weed_bin() {
  weed_ready && return
  log "building SeaweedFS $SEAWEEDFS_VERSION with Go (several minutes on 2 cores, once)"
  mkdir -p "$BIN"
  (cd toolchain/engine/seaweedfs && GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w" -o "$BIN/weed" \
    github.com/seaweedfs/seaweedfs/weed)
  echo "$SEAWEEDFS_VERSION" > "$BIN/weed.version"
}

go_toolchain() {
  # Go's official tarball lives in /usr/local/go when its bin folder is not on PATH.
  command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
  command -v go >/dev/null && return
  local dir=$CACHE/go/golang.org/toolchain@$GO_TOOLCHAIN
  if [ ! -x "$dir/bin/go" ]; then
    local proxy=${GOPROXY:-https://proxy.golang.org}
    proxy=${proxy%%,*}
    log "installing Go ($GO_TOOLCHAIN) from $proxy"
    mkdir -p "$CACHE/go"
    curl -fsSL -o "$CACHE/go/toolchain.zip" "$proxy/golang.org/toolchain/@v/$GO_TOOLCHAIN.zip"
    echo "$GO_TOOLCHAIN_SHA256  $CACHE/go/toolchain.zip" | sha256sum -c --quiet -
    python3 -m zipfile -e "$CACHE/go/toolchain.zip" "$CACHE/go"
    rm -f "$CACHE/go/toolchain.zip"
    chmod -R u+x "$dir/bin" "$dir/pkg/tool"
  fi
  export PATH="$PATH:$dir/bin"
  export GOTOOLCHAIN=local
}

pulumi_ready() {
  [ -x "$BIN/pulumi" ] && [ "$("$BIN/pulumi" version 2>/dev/null)" = "$PULUMI_VERSION" ] \
    && [ "$(cat "$BIN/pulumi.patches" 2>/dev/null)" = "$(patches_digest)" ]
}

apt_packages
python_env
bytecode
judges_env
release_trees
# Go is needed only while the CLI, actionlint or SeaweedFS is missing.
{ pulumi_ready && actionlint_ready && weed_ready; } || go_toolchain
pulumi_cli
actionlint_bin
weed_bin
plugin_shims
language_host
log "ready: $("$BIN/pulumi" version), Python SDK $(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("pulumi"))')"
