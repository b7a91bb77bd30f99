"""Fixed names and addresses of the test bed.

Everything the bed creates outside its own folder carries the ``sptb`` prefix,
so leftovers of an interrupted run can be found and removed by name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PREFIX = "sptb-"
BRIDGE = "sptb0"
DOMAIN = "testbed.invalid"
SUBNET = "10.231.7."
PREFIX_LEN = 24
CONTROLLER_ADDRESS = f"{SUBNET}1"
CLIENT_ADDRESSES = [f"{SUBNET}{i}" for i in range(100, 140)]

# Locally administered MACs that stay the same across rebuilds: a new MAC for
# the same address leaves stale neighbour entries in the root namespace and
# stalls the first connections for seconds.
BRIDGE_MAC = "02:73:70:74:62:01"

# Set in the environment of every host's first process; lets cleanup find
# processes of a bed whose state file is gone.
ENV_MARKER = "SPTB_TESTBED"

STATE_FILE = "state.json"
MARKER_FILE = ".sptb-testbed"
LOCK_PATH = Path("/run/lock/sptb-testbed.lock")
HOST_INIT = Path(__file__).with_name("host-init.sh")

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class HostSpec:
    name: str
    octet: int

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
        return f"02:73:70:74:68:{self.octet:02x}"

    @property
    def veth_mac(self) -> str:
        return f"02:73:70:74:72:{self.octet:02x}"


HOST_SPECS = (HostSpec("mx", 11), HostSpec("edge", 12), HostSpec("auth", 13))


def default_dir() -> Path:
    override = os.environ.get("TESTBED_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / ".testbed"
