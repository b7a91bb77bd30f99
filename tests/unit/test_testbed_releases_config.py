"""Release hosts of the test bed, without a bed: how releases are named and how a host's files are fitted to them."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolchain.testbed import rootfs
from toolchain.testbed.hostfs import group_id, is_dovecot_24, openssh_version
from toolchain.testbed.layout import parse_releases, with_releases


def test_one_release_for_all_three_hosts():
    assert parse_releases("trixie") == {"mx": "trixie", "edge": "trixie", "auth": "trixie"}


def test_releases_per_host_and_the_machines_own():
    assert parse_releases("mx=trixie, edge=bullseye") == {"mx": "trixie", "edge": "bullseye", "auth": None}
    assert parse_releases("mx=machine,auth=bookworm") == {"mx": None, "edge": None, "auth": "bookworm"}
    assert parse_releases("machine") == {"mx": None, "edge": None, "auth": None}
    assert [s.release for s in with_releases({"edge": "trixie"})] == [None, "trixie", None]


@pytest.mark.parametrize("text", ["mx=trixie,web=trixie", "mx=", "mx=trixie,,", ""])
def test_unknown_hosts_and_empty_names_are_refused(text):
    with pytest.raises(ValueError):
        parse_releases(text)


@pytest.mark.parametrize("name", ["../etc", "Trixie", "a", "trixie;rm", "-x"])
def test_a_release_name_is_a_plain_code_name(name):
    with pytest.raises(ValueError):
        rootfs.check_release_name(name)
    rootfs.check_release_name("trixie")
    rootfs.check_release_name("bookworm-backports")


def test_the_recipe_names_the_release_and_every_package():
    args = rootfs.mmdebstrap_args("trixie")
    assert args[0] == "mmdebstrap" and args[-1] == "trixie" and "--variant=minbase" in args
    include = next(a for a in args if a.startswith("--include="))
    assert set(include.removeprefix("--include=").split(",")) == set(rootfs.PACKAGES)
    hook = next(a for a in args if a.startswith("--essential-hook="))
    assert "'postfix postfix/main_mailer_type select Internet Site'" in hook
    # A different release is a different recipe, so its own tree.
    assert rootfs.mmdebstrap_args("bullseye") != args


def test_openssh_versions_from_debian_package_versions():
    assert openssh_version("1:10.0p1-7+deb13u4") == (10, 0)
    assert openssh_version("1:8.4p1-5+deb11u7") == (8, 4)
    assert openssh_version("9.2p1-2") == (9, 2)
    assert openssh_version("") == (0, 0)


def test_dovecot_24_is_told_by_its_config_version(tmp_path: Path):
    (tmp_path / "dovecot.conf").write_text("dovecot_config_version = 2.4.0\n!include conf.d/*.conf\n")
    assert is_dovecot_24(tmp_path)
    (tmp_path / "dovecot.conf").write_text("# dovecot_config_version = 2.4.0\n!include conf.d/*.conf\n")
    assert not is_dovecot_24(tmp_path)


def test_a_group_is_looked_up_in_the_trees_own_etc_group(tmp_path: Path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/group").write_text("root:x:0:\ndovecot:x:113:\n")
    assert group_id("dovecot", tmp_path) == 113
    with pytest.raises(KeyError):
        group_id("postdrop", tmp_path)
