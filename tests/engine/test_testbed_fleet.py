"""Fleet mode of the test bed: extra Postfix hosts made beside the three, and every trace of them removed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from secure_postfix.remote.ssh import Session, SshTarget
from toolchain.testbed import fleet, resize_fleet
from toolchain.testbed.layout import fleet_specs
from toolchain.testbed.lifecycle import _locked, problems
from toolchain.testbed.network import netns_path, our_links, our_netns
from toolchain.testbed.proc import alive, all_pids, ns_inode

pytestmark = pytest.mark.engine


def in_netns(name: str) -> list[int]:
    inode = ns_inode(netns_path(name))
    return [pid for pid in all_pids() if inode is not None and ns_inode(f"/proc/{pid}/ns/net") == inode]


def test_a_fleet_of_three_serves_ssh_and_smtp_and_goes_without_a_trace(testbed):
    base = {name: host.pid for name, host in testbed.hosts.items()}
    specs = fleet_specs(3)
    with fleet(testbed, 3) as hosts:
        assert [h.name for h in hosts] == ["f001", "f002", "f003"] == testbed.fleet
        assert problems(testbed) == []
        for spec, host in zip(specs, hosts, strict=True):
            # Its own sshd with the pinned key, its own Postfix with its own name, on its own address.
            target = SshTarget(
                host=host.address, private_key=testbed.client_key_path.read_text(), host_key=host.host_key
            )
            with Session(target) as session:
                assert session.run(["postconf", "-h", "myhostname"]).stdout.decode().strip() == spec.hostname
            assert testbed.smtp_banner(host.name).startswith(f"220 {spec.hostname} ESMTP")
            assert f"{host.address} {host.host_key}" in testbed.known_hosts_path.read_text()
        # Root's home is the host's own (Debian's fresh one), so no shell setup of this machine's runs there;
        # the three hosts have theirs too.
        home = testbed.run("f001", "stat -c %i /root; cat /root/.bashrc").stdout
        assert int(home.split()[0]) != os.stat("/root").st_ino
        assert home.split("\n", 1)[1] == Path("/etc/skel/.bashrc").read_text()
        assert int(testbed.run("mx", "stat -c %i /root").stdout) != os.stat("/root").st_ino
        # A change on one fleet host is its own.
        testbed.run("f001", "postconf -e message_size_limit=12345")
        assert testbed.run("f002", "postconf -h message_size_limit").stdout.strip() != "12345"
        assert testbed.run("mx", "postconf -h message_size_limit").stdout.strip() != "12345"
        pids = [h.pid for h in hosts]
    assert testbed.fleet == [] and set(testbed.hosts) == set(base)
    assert {name: host.pid for name, host in testbed.hosts.items()} == base
    assert not any(alive(pid) for pid in pids)
    assert not {s.netns for s in specs} & set(our_netns())
    assert not {s.veth for s in specs} & set(our_links())
    assert not any((testbed.dir / "hosts" / s.name).exists() for s in specs)
    assert "140 " not in testbed.known_hosts_path.read_text()
    assert problems(testbed) == []


def test_a_smaller_fleet_keeps_its_first_hosts_and_drops_the_rest(testbed):
    with fleet(testbed, 2) as hosts:
        kept = hosts[0].pid
        with _locked():
            resize_fleet(testbed, 1)
        assert testbed.fleet == ["f001"] and testbed.hosts["f001"].pid == kept
        assert "sptb" in fleet_specs(2)[1].netns and fleet_specs(2)[1].netns not in our_netns()
        assert in_netns(fleet_specs(1)[0].netns)
        assert problems(testbed) == []


def test_the_command_line_builds_and_removes_a_fleet(testbed):
    env = {**os.environ}
    python = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "python"
    run = [str(python), "-m", "toolchain.testbed", "up", "--dir", str(testbed.dir)]
    up = subprocess.run([*run, "--fleet", "2"], env=env, capture_output=True, text=True, timeout=120, check=True)
    assert "f002" in up.stdout and fleet_specs(2)[1].address in up.stdout
    down = subprocess.run([*run, "--fleet", "0"], env=env, capture_output=True, text=True, timeout=120, check=True)
    assert "f001" not in down.stdout
    assert not [n for n in our_netns() if n.endswith(("-f001", "-f002"))]
