"""Fixed names and addresses of the test bed.

Everything the bed creates outside its own folder carries the ``sptb`` prefix,
so leftovers of an interrupted run can be found and removed by name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

# Instance N's subnet is 10.231.(7+N).0/24; 40 instances stay inside 10.231.7.0-10.231.46.255.
MAX_INSTANCE = 39


def _instance() -> int:
    """TESTBED_INSTANCE=N (0-39) gives another bed its own names and subnet: two checkouts, or the test workers
    of one run (tests/conftest.py gives each worker its own), can use beds at once."""
    raw = os.environ.get("TESTBED_INSTANCE", "0")
    if not (raw.isascii() and raw.isdigit() and 0 <= int(raw) <= MAX_INSTANCE):
        raise SystemExit(f"TESTBED_INSTANCE must be a whole number from 0 to {MAX_INSTANCE}, not {raw!r}")
    return int(raw)


def instance_names(instance: int) -> tuple[str, str, str]:
    """(prefix of its namespaces and links, bridge, process marker) of bed `instance`.

    Set in the environment of every host's first process, the marker lets cleanup find processes of a bed whose
    state file is gone.
    """
    tag = "" if instance == 0 else str(instance)
    return f"sptb{tag}-", f"sptb{instance}", f"SPTB_TESTBED{tag}"


INSTANCE = _instance()
_TAG = "" if INSTANCE == 0 else str(INSTANCE)
PREFIX, BRIDGE, ENV_MARKER = instance_names(INSTANCE)
DOMAIN = "testbed.invalid"
SUBNET = f"10.231.{7 + INSTANCE}."
PREFIX_LEN = 24
CONTROLLER_ADDRESS = f"{SUBNET}1"
CLIENT_ADDRESSES = [f"{SUBNET}{i}" for i in range(100, 140)]

# Locally administered MACs that stay the same across rebuilds: a new MAC for
# the same address leaves stale neighbour entries in the root namespace and
# stalls the first connections for seconds.
BRIDGE_MAC = f"02:73:70:74:{0x62 + INSTANCE:02x}:01"


STATE_FILE = "state.json"
MARKER_FILE = ".sptb-testbed"
LOCK_PATH = Path(f"/run/lock/sptb{_TAG}-testbed.lock")
HOST_INIT = Path(__file__).with_name("host-init.sh")

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class HostSpec:
    name: str
    octet: int
    # A Debian release whose root file system the host runs (rootfs.py), or None: the machine's own.
    release: str | None = None

    @property
    def address(self) -> str:
        return f"{SUBNET}{self.octet}"

    @property
    def hostname(self) -> str:
        return f"{self.name}.{DOMAIN}"

    @property
    def netns(self) -> str:
        return f"{PREFIX}{self.name}"

    @property
    def veth(self) -> str:
        # Root-side end of the host's link; interface names max out at 15 chars.
        return f"{PREFIX}{self.name}"

    @property
    def mac(self) -> str:
        return f"02:73:{0x70 + INSTANCE:02x}:74:68:{self.octet:02x}"

    @property
    def veth_mac(self) -> str:
        return f"02:73:{0x70 + INSTANCE:02x}:74:72:{self.octet:02x}"


HOST_SPECS = (HostSpec("mx", 11), HostSpec("edge", 12), HostSpec("auth", 13))

# What `--release` and TESTBED_RELEASE call the machine's own root file system (a host of the default bed).
MACHINE_RELEASE = "machine"
RELEASE_VARIABLE = "TESTBED_RELEASE"


def parse_releases(text: str) -> dict[str, str | None]:
    """Each of the three hosts' release from `trixie` (all three) or `mx=trixie,edge=bullseye` (the others run
    the machine's own root); `machine` names the machine's own. None stands for the machine's own."""
    names = [spec.name for spec in HOST_SPECS]
    text = text.strip()
    if "=" not in text:
        return dict.fromkeys(names, _release_or_none(text))
    found: dict[str, str | None] = dict.fromkeys(names)
    for item in text.split(","):
        host, sep, release = item.strip().partition("=")
        if not sep or host not in names:
            raise ValueError(f"{item.strip()!r}: expected HOST=RELEASE with HOST one of {', '.join(names)}")
        found[host] = _release_or_none(release)
    return found


def _release_or_none(release: str) -> str | None:
    release = release.strip()
    if not release:
        raise ValueError("empty release name")
    return None if release == MACHINE_RELEASE else release


def with_releases(releases: dict[str, str | None]) -> tuple[HostSpec, ...]:
    """The three hosts, each with its release from `releases` (absent: the machine's own)."""
    return tuple(replace(spec, release=releases.get(spec.name)) for spec in HOST_SPECS)


# Fleet mode (`python -m toolchain.testbed up --fleet N`, the benchmark): up to 100 more Postfix hosts, f001 at .140 to
# f100 at .239, clear of the three hosts, the controller (.1) and the client sources (.100-.139).
FLEET_FIRST_OCTET = 140
FLEET_MAX = 100


def fleet_specs(count: int) -> tuple[HostSpec, ...]:
    """The first `count` fleet hosts, always the same names and addresses."""
    if not 0 <= count <= FLEET_MAX:
        raise ValueError(f"a fleet has 0 to {FLEET_MAX} hosts, not {count}")
    return tuple(HostSpec(f"f{i + 1:03d}", FLEET_FIRST_OCTET + i) for i in range(count))


def default_dir() -> Path:
    override = os.environ.get("TESTBED_DIR")
    if override:
        return Path(override)
    # Each instance its own folder and record: a second bed from one checkout must not take over the first's
    # state.json (the local stack reads its addresses from there).
    name = ".testbed" if INSTANCE == 0 else f".testbed-{INSTANCE}"
    return Path(__file__).resolve().parents[2] / name
