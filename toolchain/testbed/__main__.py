"""Command line: python -m toolchain.testbed up [--fleet N] [--release SPEC]|down|status [--dir DIR]|rootfs RELEASE...

`rootfs RELEASE...` builds (or finds in .cache/rootfs/) the root file systems that hosts of those Debian releases run,
and shows what each holds."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .layout import FLEET_FIRST_OCTET, FLEET_MAX, MACHINE_RELEASE, RELEASE_VARIABLE, parse_releases
from .lifecycle import create, destroy, status
from .model import TestBed
from .rootfs import check_release_name, ensure_rootfs, read_stamp

# The daemons whose versions `rootfs` shows.
SHOWN_PACKAGES = ("postfix", "dovecot-core", "openssh-server")


def _summary(bed: TestBed) -> str:
    lines = [f"test bed in {bed.dir}"]
    for host in bed.hosts.values():
        release = host.release or MACHINE_RELEASE
        lines.append(f"  {host.name:<5} {host.address:<12} {host.hostname:<22} pid {host.pid:<8} {release}")
    first, last = bed.client_addresses[0], bed.client_addresses[-1]
    lines += [
        f"  controller {bed.controller_address}, client sources {first}..{last}",
        f"  client key   {bed.client_key_path}",
        f"  known_hosts  {bed.known_hosts_path}",
        f"  ssh: ssh -i {bed.client_key_path} -o UserKnownHostsFile={bed.known_hosts_path} root@ADDRESS",
    ]
    return "\n".join(lines)


def _rootfs(releases: list[str]) -> int:
    for release in releases:
        started = time.monotonic()
        root = ensure_rootfs(release)
        stamp = read_stamp(release) or {}
        versions = stamp.get("versions") or {}
        assert isinstance(versions, dict)
        size = int(str(stamp.get("size_bytes", 0))) / 1e6
        print(f"{release}: {root}")
        print(f"  built {stamp.get('built_at')} in {stamp.get('build_seconds')}s, {size:.0f} MB", end="")
        print(f" (ready in {time.monotonic() - started:.1f}s now)")
        print("  " + ", ".join(f"{name} {versions.get(name, '-')}" for name in SHOWN_PACKAGES))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolchain.testbed", description=__doc__)
    parser.add_argument("action", choices=["up", "down", "status", "rootfs"])
    parser.add_argument("releases", nargs="*", metavar="RELEASE", help="with rootfs: the releases to build")
    parser.add_argument("--dir", type=Path, default=None, help="bed folder (default: .testbed)")
    parser.add_argument(
        "--fleet",
        type=int,
        default=None,
        metavar="N",
        help=f"with up: N more Postfix hosts f001.. at .{FLEET_FIRST_OCTET} upwards (0-{FLEET_MAX}; 0 removes them)",
    )
    parser.add_argument(
        "--release",
        default=None,
        metavar="SPEC",
        help=f"with up: the Debian release the hosts run, built once into .cache/rootfs/: RELEASE for all three "
        f"(e.g. trixie), or HOST=RELEASE,... (e.g. mx=trixie,edge=bullseye; the others run the machine's own); "
        f"{MACHINE_RELEASE!r} is the machine's own root. Default: ${RELEASE_VARIABLE}, else what a running bed has",
    )
    args = parser.parse_args(argv)
    if args.fleet is not None and (args.action != "up" or not 0 <= args.fleet <= FLEET_MAX):
        parser.error(f"--fleet goes with up and takes 0 to {FLEET_MAX}")
    if (args.action == "rootfs") != bool(args.releases):
        parser.error("rootfs takes one or more release names, and only rootfs does")
    releases = None
    if args.release is not None:
        if args.action != "up":
            parser.error("--release goes with up")
        try:
            releases = parse_releases(args.release)
            for release in releases.values():
                if release is not None:
                    check_release_name(release)
        except ValueError as exc:
            parser.error(f"--release: {exc}")
    if args.action == "rootfs":
        try:
            for release in args.releases:
                check_release_name(release)
        except ValueError as exc:
            parser.error(str(exc))
        return _rootfs(args.releases)
    started = time.monotonic()
    if args.action == "up":
        bed = create(args.dir, fleet=args.fleet, releases=releases)
        print(_summary(bed))
        print(f"  ready in {time.monotonic() - started:.1f}s")
        return 0
    if args.action == "down":
        destroy(args.dir)
        print(f"test bed removed in {time.monotonic() - started:.1f}s")
        return 0
    bed, found = status(args.dir)
    if bed is not None:
        print(_summary(bed))
    for problem in found:
        print(f"  problem: {problem}")
    print("healthy" if bed is not None and not found else "not healthy")
    return 0 if bed is not None and not found else 1


if __name__ == "__main__":
    sys.exit(main())
