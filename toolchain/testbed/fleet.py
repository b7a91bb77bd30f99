"""Fleet mode: up to 100 more Postfix hosts beside the bed's three, each with its own namespaces and sshd.

A fleet host is built as mx is (its own network, mount, UTS and PID namespaces, folder, sshd, Postfix), on
the same bridge, at the addresses `layout.fleet_specs` gives. It runs no Dovecot: a fleet is for measuring
Postfix changes. Everything a fleet host makes carries the bed's prefix, so the bed's teardown removes it
as well.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from . import hostfs, network, proc
from .layout import HostSpec, fleet_specs
from .lifecycle import SMTP_WAIT, _launch, _locked, _wait_ssh
from .model import Host, TestBed

# Building and starting are mostly waiting on child processes; more at once only adds CPU contention.
WORKERS = 8


def resize_fleet(bed: TestBed, count: int) -> None:
    """Make the bed carry exactly `count` fleet hosts (f001 upwards); the caller holds the bed's lock."""
    wanted = fleet_specs(count)
    have = len(bed.fleet)
    if count < have:
        _remove(bed, fleet_specs(have)[count:])
    elif count > have:
        _add(bed, wanted[have:])


@contextmanager
def fleet(bed: TestBed, count: int) -> Iterator[list[Host]]:
    """`count` fleet hosts for the duration of the block; all of them removed afterwards, whatever happens."""
    try:
        with _locked():
            resize_fleet(bed, count)
        yield [bed.hosts[name] for name in bed.fleet]
    finally:
        with _locked():
            resize_fleet(bed, 0)


def _host_dir(bed: TestBed, spec: HostSpec) -> Path:
    return bed.dir / "hosts" / spec.name


def _add(bed: TestBed, specs: tuple[HostSpec, ...]) -> None:
    public_key = bed.client_key_path.with_suffix(".pub").read_text()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        host_keys = list(pool.map(lambda s: hostfs.prepare_host(s, _host_dir(bed, s), public_key), specs))
    for spec, host_key in zip(specs, host_keys, strict=True):
        network.create_host_network(spec)
        pid = _launch(spec, _host_dir(bed, spec), bed.dir)
        bed.hosts[spec.name] = Host(spec.name, spec.address, spec.hostname, host_key, pid, _host_dir(bed, spec))
        bed.fleet.append(spec.name)
    # Recorded before the daemons start: a failure from here on still leaves a state that names every host.
    _write_known_hosts(bed)
    bed.save()
    for spec in specs:
        _wait_ssh(spec)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        list(pool.map(lambda s: _start_postfix(bed, s.name), specs))


def _start_postfix(bed: TestBed, host: str) -> None:
    bed.run(host, "/usr/lib/postfix/configure-instance.sh -")
    bed.run(host, "postconf -n >/dev/null && postfix start </dev/null")
    bed.wait_smtp(host, timeout=SMTP_WAIT)


def _remove(bed: TestBed, specs: tuple[HostSpec, ...]) -> None:
    netns = {proc.ns_inode(network.netns_path(spec.netns)) for spec in specs} - {None}
    victims = {bed.hosts[spec.name].pid for spec in specs if spec.name in bed.hosts}
    # Anything else still in those namespaces (an nsenter of a test, say) goes too.
    victims |= {pid for pid in proc.all_pids() if proc.ns_inode(f"/proc/{pid}/ns/net") in netns}
    survivors = proc.kill_all(victims)
    if survivors:
        raise RuntimeError(f"fleet processes survived SIGKILL: {survivors}")
    links = set(network.our_links())
    for spec in specs:
        proc.run(["ip", "netns", "delete", spec.netns], check=False)
        if spec.veth in links:
            proc.run(["ip", "link", "delete", spec.veth], check=False)
        shutil.rmtree(_host_dir(bed, spec), ignore_errors=True)
        bed.hosts.pop(spec.name, None)
        if spec.name in bed.fleet:
            bed.fleet.remove(spec.name)
    _write_known_hosts(bed)
    bed.save()


def _write_known_hosts(bed: TestBed) -> None:
    bed.known_hosts_path.write_text("".join(f"{h.address} {h.host_key}\n" for h in bed.hosts.values()))
