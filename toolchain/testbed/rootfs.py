"""Root file systems of other Debian releases for test-bed hosts, built once with mmdebstrap.

`ensure_rootfs("trixie")` returns `.cache/rootfs/trixie/root`, a minbase Debian with the daemons and tools a host
needs, built from deb.debian.org the first time and reused afterwards. Hosts never write into it: each host lays an
overlay of its own over it (host-init.sh), so several hosts and bed instances share one tree.

`stamp.json` beside the tree records how it was built (release, packages, mmdebstrap arguments) and the versions
installed; a different recipe rebuilds the tree. A lock file per release (`.cache/rootfs/RELEASE.lock`) keeps
parallel builders (test workers) from building the same tree at once: the second waits and then reuses it.
"""

from __future__ import annotations

import fcntl
import json
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .proc import BASE_ENV, mount_points

CACHE_DIR = Path(__file__).resolve().parents[2] / ".cache" / "rootfs"
STAMP_FILE = "stamp.json"
BUILD_TIMEOUT = 1800

# What a host runs and what the bed and the project's remote scripts call on it. Most of these are Essential or
# required anyway; naming them keeps a release that demotes one (trixie: mount, hostname) from losing it.
PACKAGES = (
    "postfix",
    "dovecot-core",
    "openssh-server",
    "openssh-client",
    # ip, ss
    "iproute2",
    # pgrep, pkill, ps, kill
    "procps",
    "psmisc",
    "sudo",
    "openssl",
    "ca-certificates",
    # flock, unshare, nsenter, mount, script, getent, awk, sha256sum, stat, mktemp, timeout
    "util-linux",
    "mount",
    "bsdutils",
    "libc-bin",
    "mawk",
    "coreutils",
    "bash",
    "hostname",
    # /etc/services: Postfix's master.cf names its ports ("smtp").
    "netbase",
)

# Postfix's postinst asks how the host is used; a host starts from Debian's Internet Site defaults, as the
# machine's own Postfix does (scripts/setup.sh).
DEBCONF = (
    "postfix postfix/main_mailer_type select Internet Site",
    "postfix postfix/mailname string testbed.invalid",
)

_RELEASE_NAME = re.compile(r"^[a-z][a-z0-9-]{1,31}$")


def ensure_rootfs(release: str) -> Path:
    """The root file system of `release`, built on first use; returns the tree's folder."""
    check_release_name(release)
    folder = CACHE_DIR / release
    with _build_lock(release):
        if not is_built(release):
            _build(release, folder, mmdebstrap_args(release))
    return folder / "root"


def is_built(release: str) -> bool:
    """Whether the cache holds a tree of `release` built with today's recipe (ensure_rootfs would not build)."""
    stamp = read_stamp(release)
    tree = CACHE_DIR / release / "root"
    return stamp is not None and stamp.get("recipe") == mmdebstrap_args(release) and (tree / "usr").is_dir()


def root_of(release: str | None) -> Path:
    """The root file system a host of `release` runs: the machine's own for None, else the release's built tree."""
    if release is None:
        return Path("/")
    check_release_name(release)
    if not is_built(release):
        raise RuntimeError(f"no root file system built for {release}; call ensure_rootfs({release!r}) first")
    return CACHE_DIR / release / "root"


def check_release_name(release: str) -> None:
    # The name becomes a folder and an mmdebstrap argument: a suite or code name, nothing else.
    if not _RELEASE_NAME.match(release):
        raise ValueError(f"not a Debian release name: {release!r}")


def mmdebstrap_args(release: str) -> list[str]:
    """The command line without its target folder; it is the recipe the stamp records."""
    preseed = "; ".join(f'echo {shlex.quote(line)} | chroot "$1" debconf-set-selections' for line in DEBCONF)
    return [
        "mmdebstrap",
        "--variant=minbase",
        "--mode=root",
        "--include=" + ",".join(PACKAGES),
        # debconf is there once the Essential packages are; Postfix is installed after this hook.
        "--essential-hook=" + preseed,
        # Not needed on a test host, and a fifth of the tree.
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-include=/usr/share/locale/locale.alias",
        # No mirror argument: mmdebstrap takes deb.debian.org and, for a release it knows (bullseye, bookworm,
        # trixie), adds RELEASE-updates and deb.debian.org/debian-security's RELEASE-security, as an installed
        # host has them.
        release,
    ]


def read_stamp(release: str) -> dict[str, object] | None:
    try:
        data = json.loads((CACHE_DIR / release / STAMP_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def package_versions(release: str) -> dict[str, str]:
    """Installed versions in the tree of `release` (from its stamp), e.g. {"postfix": "3.10.5-1~deb13u1"}."""
    stamp = read_stamp(release)
    versions = stamp.get("versions") if stamp else None
    if not isinstance(versions, dict):
        raise RuntimeError(f"no root file system built for {release}; call ensure_rootfs({release!r}) first")
    return {str(k): str(v) for k, v in versions.items()}


@contextmanager
def _build_lock(release: str) -> Iterator[None]:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / f"{release}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(release: str, folder: Path, recipe: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    fresh, log_path = folder / "root.new", folder / "build.log"
    _remove_tree(fresh)
    (folder / STAMP_FILE).unlink(missing_ok=True)
    started = time.monotonic()
    with open(log_path, "wb") as log:
        result = subprocess.run(
            # mmdebstrap mounts /proc, /sys and /dev into the tree while it builds; in a mount namespace of its
            # own, a build that is killed leaves none of them behind on the machine.
            ["unshare", "--mount", "--propagation", "private", "--", *recipe, str(fresh)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=BASE_ENV,
            timeout=BUILD_TIMEOUT,
        )
    if result.returncode != 0:
        _remove_tree(fresh)
        tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
        raise RuntimeError(f"mmdebstrap {release} failed ({result.returncode}); {log_path}:\n" + "\n".join(tail))
    seconds = time.monotonic() - started
    # A tree from an older recipe is replaced only now that the new one is complete.
    _remove_tree(folder / "root")
    fresh.rename(folder / "root")
    stamp = {
        "release": release,
        "packages": list(PACKAGES),
        "recipe": recipe,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(seconds, 1),
        "size_bytes": _tree_size(folder / "root"),
        "versions": _installed_versions(folder / "root"),
    }
    tmp = folder / (STAMP_FILE + ".tmp")
    tmp.write_text(json.dumps(stamp, indent=2) + "\n")
    tmp.rename(folder / STAMP_FILE)


def _installed_versions(root: Path) -> dict[str, str]:
    # The tree's own dpkg database, read from outside: nothing runs in the tree.
    out = subprocess.run(
        ["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W", "-f", "${Package}\t${Version}\n"],
        capture_output=True,
        text=True,
        check=True,
        env=BASE_ENV,
    ).stdout
    return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)


def _tree_size(root: Path) -> int:
    out = subprocess.run(["du", "-sb", str(root)], capture_output=True, text=True, check=True, env=BASE_ENV).stdout
    return int(out.split()[0])


def _remove_tree(path: Path) -> None:
    if not path.exists():
        return
    # A tree with the machine's /dev or /proc mounted in it must never be deleted through them.
    inside = [m for m in mount_points() if m == str(path) or m.startswith(f"{path}/")]
    if inside:
        raise RuntimeError(f"{path} has mount points inside ({', '.join(sorted(inside))}); not removing it")
    shutil.rmtree(path)
