"""Fleet mode's address plan: a hundred hosts beside the bed's three, clear of every address already in use."""

from __future__ import annotations

import pytest

from toolchain.testbed import layout
from toolchain.testbed.__main__ import main as bed_command


def test_a_hundred_hosts_take_140_to_239():
    specs = layout.fleet_specs(100)
    assert [s.name for s in specs[:2]] == ["f001", "f002"] and specs[-1].name == "f100"
    assert [s.octet for s in specs] == list(range(140, 240))
    assert specs[0].address == f"{layout.SUBNET}140"


def test_fleet_addresses_collide_with_nothing_else_of_the_bed():
    fleet = {s.address for s in layout.fleet_specs(layout.FLEET_MAX)}
    others = {s.address for s in layout.HOST_SPECS} | set(layout.CLIENT_ADDRESSES) | {layout.CONTROLLER_ADDRESS}
    assert len(fleet) == 100 and not fleet & others
    assert all(int(a.rsplit(".", 1)[1]) < 255 for a in fleet)


def test_fleet_names_macs_and_links_are_unique_and_fit_the_kernel():
    specs = layout.HOST_SPECS + layout.fleet_specs(layout.FLEET_MAX)
    for attribute in ("name", "netns", "mac", "veth_mac"):
        values = [getattr(s, attribute) for s in specs]
        assert len(set(values)) == len(values), attribute
    # Interface names are at most 15 bytes; the veth is named after the host.
    assert max(len(s.veth) for s in specs) <= 15
    assert all(s.veth.startswith(layout.PREFIX) for s in specs)


def test_smaller_fleets_are_prefixes_of_the_largest():
    assert layout.fleet_specs(5) == layout.fleet_specs(100)[:5]
    assert layout.fleet_specs(0) == ()


@pytest.mark.parametrize("count", [-1, 101])
def test_fleet_size_out_of_range_is_refused(count):
    with pytest.raises(ValueError, match="0 to 100"):
        layout.fleet_specs(count)


@pytest.mark.parametrize("argv", [["up", "--fleet", "101"], ["down", "--fleet", "3"], ["up", "--fleet", "-2"]])
def test_the_command_line_refuses_a_fleet_it_cannot_build(argv, capsys):
    with pytest.raises(SystemExit) as done:
        bed_command(argv)
    assert done.value.code == 2
    assert "--fleet goes with up and takes 0 to 100" in capsys.readouterr().err
