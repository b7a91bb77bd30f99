"""The bed's bridge, network namespaces and links.

Nothing here routes beyond 10.231.7.0/24: the hosts get no default route and
the root namespace does not forward, so traffic stays on the bridge.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from .layout import (
    BRIDGE,
    BRIDGE_MAC,
    CLIENT_ADDRESSES,
    CONTROLLER_ADDRESS,
    PREFIX,
    PREFIX_LEN,
    HostSpec,
)
from .proc import mount_points, run

NETNS_DIR = Path("/run/netns")


def netns_path(name: str) -> str:
    return str(NETNS_DIR / name)


def our_netns() -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(entry for entry in os.listdir(NETNS_DIR) if entry.startswith(PREFIX))


def our_links() -> list[str]:
    links = json.loads(run(["ip", "-j", "link", "show"]).stdout or "[]")
    names = [link["ifname"] for link in links]
    return [name for name in names if name.startswith(PREFIX) or name == BRIDGE]


def bridge_addresses() -> set[str]:
    proc = run(["ip", "-j", "-4", "addr", "show", "dev", BRIDGE], check=False)
    if proc.returncode != 0:
        return set()
    found: set[str] = set()
    for link in json.loads(proc.stdout or "[]"):
        found.update(info["local"] for info in link.get("addr_info", []))
    return found


def _sysctl(key: str, value: str, netns: str | None = None) -> None:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    run([*prefix, "sysctl", "-q", "-w", f"{key}={value}"])


def create_bridge() -> None:
    run(["ip", "link", "add", BRIDGE, "address", BRIDGE_MAC, "type", "bridge"])
    # IPv6 would only add router solicitations and DAD chatter to the bridge.
    _sysctl(f"net.ipv6.conf.{BRIDGE}.disable_ipv6", "1")
    run(["ip", "addr", "add", f"{CONTROLLER_ADDRESS}/{PREFIX_LEN}", "dev", BRIDGE])
    # /32: extra source addresses for clients, without extra subnet routes.
    batch = "".join(f"address add {addr}/32 dev {BRIDGE}\n" for addr in CLIENT_ADDRESSES)
    _ip_batch(batch)
    run(["ip", "link", "set", BRIDGE, "up"])


def _ip_batch(commands: str) -> None:
    # One `ip -batch` run instead of forty separate processes.
    run(["ip", "-batch", "-"], input=commands)


def create_host_network(spec: HostSpec) -> None:
    run(["ip", "netns", "add", spec.netns])
    run([
        "ip", "link", "add", spec.veth, "address", spec.veth_mac, "type", "veth",
        "peer", "name", "eth0", "address", spec.mac, "netns", spec.netns,
    ])  # fmt: skip
    _sysctl(f"net.ipv6.conf.{spec.veth}.disable_ipv6", "1")
    run(["ip", "link", "set", spec.veth, "master", BRIDGE, "up"])
    inside = ["ip", "-n", spec.netns]
    _sysctl("net.ipv6.conf.eth0.disable_ipv6", "1", netns=spec.netns)
    run([*inside, "addr", "add", f"{spec.address}/{PREFIX_LEN}", "dev", "eth0"])
    run([*inside, "link", "set", "eth0", "up"])
    run([*inside, "link", "set", "lo", "up"])


def flush_neighbours() -> None:
    run(["ip", "neigh", "flush", "dev", BRIDGE], check=False)


def remove_all() -> None:
    """Delete every namespace and link with our prefix; fine if none exist."""
    for name in our_netns():
        run(["ip", "netns", "delete", name], check=False)
    # Deleting a namespace takes its veth ends along; what is left is the
    # bridge and links whose namespace vanished some other way.
    for name in our_links():
        run(["ip", "link", "delete", name], check=False)
    _drop_netns_dir()


def _drop_netns_dir() -> None:
    # `ip netns add` turns /run/netns into a mount point; undo that once no
    # namespace (ours or anyone's) is left in it.
    if not NETNS_DIR.is_dir() or os.listdir(NETNS_DIR):
        return
    if str(NETNS_DIR) in mount_points():
        run(["umount", str(NETNS_DIR)], check=False)
    if str(NETNS_DIR) not in mount_points():
        with contextlib.suppress(OSError):
            NETNS_DIR.rmdir()
