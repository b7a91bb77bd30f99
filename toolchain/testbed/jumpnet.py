"""Hosts the controller cannot reach over SSH: only a bastion can (opt-in, for the bastion tests).

Inside each target's network namespace, a policy-routing rule refuses to route replies from
TCP port 22 to any address of the bed's subnet except the bastion's. The controller's SYN gets
no answer, as behind a firewall; SMTP and every other port stay reachable, and the bastion's
own connections (from its address) go through. It needs only iproute2.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .layout import SUBNET
from .model import TestBed

# Fixed priorities, above the main table's 32766, so `down` of the rule removes exactly ours.
_ALLOW_PRIORITY = 1201
_BLOCK_PRIORITY = 1202


def _rules(bastion_address: str) -> list[tuple[int, str]]:
    return [
        (_ALLOW_PRIORITY, f"to {bastion_address}/32 ipproto tcp sport 22 lookup main"),
        (_BLOCK_PRIORITY, f"to {SUBNET}0/24 ipproto tcp sport 22 prohibit"),
    ]


def block_direct_ssh(bed: TestBed, targets: list[str], bastion: str) -> None:
    for host in targets:
        unblock_direct_ssh(bed, [host])
        for priority, rule in _rules(bed.hosts[bastion].address):
            bed.run(host, f"ip rule add priority {priority} {rule}")


def unblock_direct_ssh(bed: TestBed, targets: list[str]) -> None:
    for host in targets:
        for priority in (_ALLOW_PRIORITY, _BLOCK_PRIORITY):
            bed.run(host, f"while ip rule del priority {priority} 2>/dev/null; do :; done", check=False)


@contextmanager
def behind_bastion(bed: TestBed, targets: list[str], bastion: str) -> Iterator[None]:
    """`targets` reachable over SSH only from `bastion` while the block lasts; removed whatever happens."""
    block_direct_ssh(bed, targets, bastion)
    try:
        yield
    finally:
        unblock_direct_ssh(bed, targets)
