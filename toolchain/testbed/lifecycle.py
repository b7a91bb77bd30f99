"""Building, checking and tearing down the bed."""

from __future__ import annotations

import fcntl
import os
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from . import hostfs, network, proc, rootfs
from .layout import (
    BRIDGE,
    CLIENT_ADDRESSES,
    CONTROLLER_ADDRESS,
    ENV_MARKER,
    FLEET_MAX,
    HOST_INIT,
    HOST_SPECS,
    LOCK_PATH,
    MARKER_FILE,
    RELEASE_VARIABLE,
    SAFE_PATH,
    STATE_FILE,
    HostSpec,
    default_dir,
    fleet_specs,
    parse_releases,
    with_releases,
)
from .model import Host, TestBed, read_state

SSH_WAIT = 15.0
SMTP_WAIT = 30.0
# configure-instance.sh is Debian's chroot sync (resolv.conf, hosts, nss libraries into the spool) that the init
# script would run first. From trixie's Postfix on, `postfix start` runs it itself (from post-install) and the
# script refuses the init script's old call.
SYNC_CHROOT = (
    "grep -qs configure-instance /usr/lib/postfix/sbin/post-install || /usr/lib/postfix/configure-instance.sh -"
)


@contextmanager
def _locked() -> Iterator[None]:
    # Bridge, namespaces and addresses are machine-wide, so one lock for the
    # machine, not one per bed folder.
    LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_PATH, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _resolve(dir: Path | None) -> Path:
    return (dir or default_dir()).resolve()


def load(dir: Path | None = None) -> TestBed:
    return read_state(_resolve(dir))


def create(dir: Path | None = None, fleet: int | None = None, releases: dict[str, str | None] | None = None) -> TestBed:
    """Return a healthy bed, reusing a running one or building it anew.

    `fleet` (fleet mode) makes the bed carry exactly that many extra Postfix hosts; None keeps what a
    running bed has (none on a new one).

    `releases` gives hosts the root file system of another Debian release ({"mx": "trixie"}; a host not named,
    or named with None, runs the machine's own); a running bed with other releases is rebuilt. None takes
    TESTBED_RELEASE (`trixie`, `mx=trixie,edge=bullseye`) when it is set, else keeps what a running bed
    has (the machine's own on a new one).
    """
    bed_dir = _resolve(dir)
    wanted = wanted_releases(releases)
    specs = with_releases(wanted or {})
    # Built (or found in the cache) before the bed is touched: a release that cannot be built leaves a running
    # bed as it was.
    for release in sorted({spec.release for spec in specs if spec.release is not None}):
        rootfs.ensure_rootfs(release)
    with _locked():
        try:
            bed = read_state(bed_dir)
        except (OSError, ValueError, KeyError):
            bed = None
        if bed is None or problems(bed) or (wanted is not None and host_releases(bed) != wanted):
            _teardown(bed_dir)
            bed = _build(bed_dir, specs)
        if fleet is not None and len(bed.fleet) != fleet:
            from .fleet import resize_fleet

            resize_fleet(bed, fleet)
        return bed


def wanted_releases(releases: dict[str, str | None] | None) -> dict[str, str | None] | None:
    """Each host's release (None: the machine's own), or None when the caller leaves it to a running bed."""
    if releases is None:
        text = os.environ.get(RELEASE_VARIABLE, "").strip()
        if not text:
            return None
        releases = parse_releases(text)
    found = {spec.name: releases.get(spec.name) for spec in HOST_SPECS}
    unknown = set(releases) - set(found)
    if unknown:
        raise ValueError(f"no such test-bed host: {', '.join(sorted(unknown))}")
    for release in found.values():
        if release is not None:
            rootfs.check_release_name(release)
    return found


def host_releases(bed: TestBed) -> dict[str, str | None]:
    return {spec.name: bed.hosts[spec.name].release if spec.name in bed.hosts else None for spec in HOST_SPECS}


def destroy(dir: Path | None = None) -> None:
    """Remove everything a bed made; safe when nothing exists."""
    with _locked():
        _teardown(_resolve(dir))
        # The lock file is the bed's too; a process waiting on it re-creates it.
        LOCK_PATH.unlink(missing_ok=True)


# ---------------------------------------------------------------- health


def problems(bed: TestBed) -> list[str]:
    """What is wrong with a bed; empty when it can be used as is."""
    found: list[str] = []
    missing = {CONTROLLER_ADDRESS, *CLIENT_ADDRESSES} - network.bridge_addresses()
    if missing:
        found.append(f"bridge lacks {len(missing)} address(es), e.g. {sorted(missing)[0]}")
    fleet = fleet_specs(min(len(bed.fleet), FLEET_MAX))
    specs = HOST_SPECS + fleet
    stray = set(network.our_netns()) - {spec.netns for spec in specs}
    stray |= set(network.our_links()) - {BRIDGE, *(spec.veth for spec in specs)}
    if stray:
        found.append(f"stray namespaces or links: {', '.join(sorted(stray))}")
    if set(bed.hosts) != {spec.name for spec in specs} or bed.fleet != [spec.name for spec in fleet]:
        found.append(f"unexpected host set {sorted(bed.hosts)}")
        return found
    for spec in HOST_SPECS:
        found += [f"{spec.name}: {p}" for p in _host_problems(bed, spec)]
    # A fleet host runs no Dovecot; a hundred are checked a few at a time.
    with ThreadPoolExecutor(max_workers=8) as pool:
        for spec, listed in zip(fleet, pool.map(lambda s: _host_problems(bed, s, dovecot=False), fleet), strict=True):
            found += [f"{spec.name}: {p}" for p in listed]
    return found


def _host_problems(bed: TestBed, spec: HostSpec, dovecot: bool = True) -> list[str]:
    host = bed.hosts[spec.name]
    if not _is_host_init(host.pid, spec):
        return [f"pid {host.pid} is not this host's sshd"]
    if not _ssh_banner(host.address, timeout=3):
        return ["sshd does not answer"]
    dovecot_check = 'kill -0 "$(cat /run/dovecot/master.pid 2>/dev/null)" 2>/dev/null || echo dovecot down'
    check = bed.run(
        spec.name,
        "postfix status >/dev/null 2>&1 || echo postfix down; " + (dovecot_check if dovecot else ":"),
        check=False,
        timeout=20,
    )
    found = check.stdout.split("\n") if check.returncode == 0 else [f"check failed: {check.stderr}"]
    found = [line for line in found if line.strip()]
    try:
        bed.wait_smtp(spec.name, timeout=3)
    except TimeoutError as exc:
        found.append(str(exc))
    return found


def _is_host_init(pid: int, spec: HostSpec) -> bool:
    if not proc.alive(pid) or not proc.is_pid_ns_init(pid):
        return False
    netns = proc.ns_inode(network.netns_path(spec.netns))
    return netns is not None and netns == proc.ns_inode(f"/proc/{pid}/ns/net")


def _ssh_banner(address: str, timeout: float) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False


# ---------------------------------------------------------------- teardown


def _teardown(bed_dir: Path) -> None:
    # Found by marker and by namespace rather than by the PIDs in the state
    # file: after a crash those may have been reused by unrelated processes,
    # and the marker also finds hosts of a bed whose folder is gone.
    victims = set(proc.marked_pids())
    for name in network.our_netns():
        victims |= set(proc.pids_in_netns(network.netns_path(name)))
    survivors = proc.kill_all(victims)
    if survivors:
        raise RuntimeError(f"test bed processes survived SIGKILL: {survivors}")
    network.remove_all()
    _remove_dir(bed_dir)


def _remove_dir(bed_dir: Path) -> None:
    if not bed_dir.exists():
        return
    # Only ever delete a folder this module made.
    ours = (bed_dir / MARKER_FILE).exists() or (bed_dir / STATE_FILE).exists()
    if not ours and any(bed_dir.iterdir()):
        raise RuntimeError(f"{bed_dir} exists and is not a test bed folder; not removing it")
    shutil.rmtree(bed_dir)


# ---------------------------------------------------------------- build


def _build(bed_dir: Path, specs: tuple[HostSpec, ...] = HOST_SPECS) -> TestBed:
    if not hostfs.sees_pristine_files():
        # Copies must come from the packages' files, not a host's private view.
        raise RuntimeError("create() must not run inside a test-bed host")
    bed_dir.mkdir(parents=True)
    (bed_dir / MARKER_FILE).write_text(
        "folder made by the testbed package; `python -m toolchain.testbed down` removes it\n"
    )
    client_key = bed_dir / "client_key"
    public_key = hostfs.make_client_key(client_key)

    def host_dir(spec: HostSpec) -> Path:
        return bed_dir / "hosts" / spec.name

    with ThreadPoolExecutor(max_workers=len(specs)) as pool:
        host_keys = list(pool.map(lambda s: hostfs.prepare_host(s, host_dir(s), public_key), specs))

    network.create_bridge()
    for spec in specs:
        network.create_host_network(spec)
    network.flush_neighbours()

    hosts: dict[str, Host] = {}
    for spec, host_key in zip(specs, host_keys, strict=True):
        pid = _launch(spec, host_dir(spec), bed_dir)
        hosts[spec.name] = Host(spec.name, spec.address, spec.hostname, host_key, pid, host_dir(spec), spec.release)

    authority = hostfs.make_authority(bed_dir / "tls")
    for spec in specs:
        hostfs.make_site_cert(spec, bed_dir / "tls", authority)
    known_hosts = bed_dir / "known_hosts"
    known_hosts.write_text("".join(f"{h.address} {h.host_key}\n" for h in hosts.values()))
    bed = TestBed(
        dir=bed_dir,
        hosts=hosts,
        client_key_path=client_key,
        known_hosts_path=known_hosts,
        client_addresses=list(CLIENT_ADDRESSES),
        controller_address=CONTROLLER_ADDRESS,
    )
    for spec in specs:
        _wait_ssh(spec)
    with ThreadPoolExecutor(max_workers=len(specs)) as pool:
        list(pool.map(lambda s: _start_daemons(bed, s.name), specs))
    bed.created_at = time.time()
    bed.save()
    remaining = problems(bed)
    if remaining:
        raise RuntimeError("test bed came up unhealthy: " + "; ".join(remaining))
    return bed


def _launch(spec: HostSpec, host_dir: Path, bed_dir: Path) -> int:
    """Start the host's first process; returns its root-namespace PID."""
    env = {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "HOME": "/root", ENV_MARKER: str(bed_dir)}
    args = [
        # setsid -f detaches the host from the caller: it survives the
        # `python -m toolchain.testbed up` process and no Popen is left unwaited.
        "setsid", "-f",
        "ip", "netns", "exec", spec.netns,
        "unshare", "--mount", "--uts", "--pid", "--fork", "--mount-proc", "--propagation", "private",
        "--", "/bin/bash", str(HOST_INIT), str(host_dir), spec.hostname,
    ]  # fmt: skip
    if spec.release is not None:
        args.append(str(rootfs.root_of(spec.release)))
    with open(host_dir / "init.log", "ab") as log:
        subprocess.run(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, check=True, timeout=30)
    netns = network.netns_path(spec.netns)
    deadline = time.monotonic() + SSH_WAIT
    while time.monotonic() < deadline:
        for pid in proc.pids_in_netns(netns):
            if proc.is_pid_ns_init(pid):
                return pid
        time.sleep(0.02)
    raise RuntimeError(f"host {spec.name} did not start; see {host_dir / 'init.log'}")


def _wait_ssh(spec: HostSpec) -> None:
    deadline = time.monotonic() + SSH_WAIT
    while not _ssh_banner(spec.address, timeout=2):
        if time.monotonic() > deadline:
            raise RuntimeError(f"sshd on {spec.name} did not come up within {SSH_WAIT}s")
        time.sleep(0.05)


def _start_daemons(bed: TestBed, host: str) -> None:
    check_private_view(bed, host)
    bed.run(host, SYNC_CHROOT)
    bed.run(host, "postconf -n >/dev/null && postfix start </dev/null")
    # dovecot keeps inherited fds open; validate first so errors are visible.
    bed.run(host, "doveconf -n >/dev/null && dovecot </dev/null >/dev/null 2>&1")
    bed.wait_smtp(host, timeout=SMTP_WAIT)
    _wait_dovecot(bed, host)


# The host's private folders. Where a command entered into the host does not find them mounted, it does not see the
# host's root, and the daemons it started would write to the machine's own spool, state and /run.
PRIVATE_MOUNTS = ("/etc/postfix", "/etc/dovecot", "/var/spool/postfix", "/var/lib/postfix", "/var/lib/dovecot", "/run")


def check_private_view(bed: TestBed, host: str) -> None:
    """Refuse to go on when commands entered into `host` do not see its own root file system and folders."""
    script = f'for d in {shlex.join(PRIVATE_MOUNTS)}; do mountpoint -q "$d" || echo "$d"; done'
    missing = bed.run(host, script, timeout=20).stdout.split()
    if missing:
        raise RuntimeError(f"{host}: commands entered into the host do not see its own {', '.join(missing)}")
    release = bed.hosts[host].release
    if release is None:
        return
    seen = bed.read_file(host, "/etc/debian_version")
    if seen != (rootfs.root_of(release) / "etc/debian_version").read_bytes():
        raise RuntimeError(f"{host}: commands entered into the host do not see {release}'s root (Debian {seen!r})")


def _wait_dovecot(bed: TestBed, host: str) -> None:
    # The master forks and its children may still die on a bad config, so
    # require it to be alive on two checks a moment apart.
    script = 'kill -0 "$(cat /run/dovecot/master.pid 2>/dev/null)" 2>/dev/null'
    deadline = time.monotonic() + 10
    seen = 0
    while seen < 2:
        seen = seen + 1 if bed.run(host, script, check=False).returncode == 0 else 0
        if time.monotonic() > deadline:
            log = bed.run(host, "tail -n 20 /var/log/dovecot.log", check=False).stdout
            raise RuntimeError(f"dovecot on {host} is not running:\n{log}")
        time.sleep(0.3)


def status(dir: Path | None = None) -> tuple[TestBed | None, list[str]]:
    bed_dir = _resolve(dir)
    try:
        bed = read_state(bed_dir)
    except (OSError, ValueError, KeyError) as exc:
        leftovers = network.our_netns() + network.our_links()
        note = f"no test bed at {bed_dir} ({type(exc).__name__})"
        return None, [note] + ([f"leftovers: {', '.join(leftovers)}"] if leftovers else [])
    return bed, problems(bed)
