"""Command line: python -m toolchain.testbed up [--fleet N] [--release SPEC]|down|status [--dir DIR]."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .layout import FLEET_FIRST_OCTET, FLEET_MAX, MACHINE_RELEASE, RELEASE_VARIABLE, parse_releases
from .lifecycle import create, destroy, status
from .model import TestBed


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolchain.testbed", description=__doc__)
    parser.add_argument("action", choices=["up", "down", "status"])
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
    releases = None
    if args.release is not None:
        if args.action != "up":
            parser.error("--release goes with up")
        try:
            releases = parse_releases(args.release)
        except ValueError as exc:
            parser.error(f"--release: {exc}")
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
