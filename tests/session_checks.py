"""What the whole test run must leave true, checked once after its last test (by the lone process or xdist's
controller, after every worker has finished): nothing left running or mounted, and no secret anywhere.

Each worker writes what the checks need into the run's folder (`RUN_DIR`) as it ends; the checks read all of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from toolchain.testbed.layout import instance_names

# The run's folder, made by the first process; workers inherit its path through the environment.
RUN_DIR_VARIABLE = "SECURE_POSTFIX_TEST_RUN"
PIDS_CGROUP_ROOT = Path("/sys/fs/cgroup/pids")
NETNS_DIR = Path("/run/netns")


# ---------------------------------------------------------------- processes


@dataclass
class ProcessWatch:
    """Every process the run starts, grandchildren and daemons included.

    The run's first process moves itself into a pids cgroup of its own: whatever it starts stays in it, however it
    detaches (setsid, double fork, another namespace), so the end of the run can list what is still alive.
    """

    cgroup: Path | None = None

    @classmethod
    def start(cls, run_dir: Path) -> ProcessWatch:
        if not (PIDS_CGROUP_ROOT / "cgroup.procs").exists():
            return cls()
        group = PIDS_CGROUP_ROOT / f"secure-postfix-tests-{run_dir.name}"
        try:
            group.mkdir()
            (group / "cgroup.procs").write_text(str(os.getpid()))
        except OSError:
            return cls()
        return cls(group)

    def others(self) -> list[int]:
        if self.cgroup is None:
            return []
        me = os.getpid()
        return [int(p) for p in (self.cgroup / "cgroup.procs").read_text().split() if int(p) != me]

    def leftovers(self, grace: float = 15.0) -> list[str]:
        """Processes other than this one still alive after `grace` seconds, named; then they are killed."""
        deadline = time.monotonic() + grace
        while self.others() and time.monotonic() < deadline:
            time.sleep(0.2)
        found = [f"process {pid}: {_cmdline(pid)}" for pid in self.others()]
        for pid in self.others():
            _kill(pid)
        return found

    def stop(self) -> None:
        if self.cgroup is None:
            return
        (PIDS_CGROUP_ROOT / "cgroup.procs").write_text(str(os.getpid()))
        for _ in range(50):
            try:
                self.cgroup.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def marked_processes(markers: list[str]) -> list[str]:
    """Processes whose environment carries one of `markers` (a variable's name): a bed's daemons carry its marker."""
    found = []
    needles = [f"{m}=".encode() for m in markers]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(item.startswith(n) for item in environ for n in needles):
            found.append(f"process {entry.name}: {_cmdline(int(entry.name))}")
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "(gone)"


def _kill(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


# ---------------------------------------------------------------- namespaces, links, mounts


def bed_leftovers(instances: list[int], bed_dirs: list[str]) -> list[str]:
    """Network namespaces, links and mounts of the run's beds that are still there."""
    found = []
    netns = sorted(os.listdir(NETNS_DIR)) if NETNS_DIR.is_dir() else []
    links = sorted(os.listdir("/sys/class/net"))
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    for instance in instances:
        prefix, bridge, _marker = instance_names(instance)
        found += [f"network namespace {n}" for n in netns if n.startswith(prefix)]
        found += [f"link {n}" for n in links if n.startswith(prefix) or n == bridge]
        found += [f"mount {line.split()[4]}" for line in mounts if f"/run/netns/{prefix}" in line.split()[4]]
    for bed_dir in bed_dirs:
        found += [
            f"mount {line.split()[4]}"
            for line in mounts
            if line.split()[4] == bed_dir or line.split()[4].startswith(bed_dir + "/")
        ]
    return found


# ---------------------------------------------------------------- the secret sweep


@dataclass
class SweepRecord:
    """What one process of the run saw: every engine command's text, state and config files, hosts' logs."""

    worker: str
    secrets: dict[str, str] = field(default_factory=dict)
    haystacks: list[tuple[str, str]] = field(default_factory=list)
    commands: list[tuple[str, bool]] = field(default_factory=list)

    def save(self, run_dir: Path) -> None:
        path = run_dir / f"sweep-{self.worker}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(self.__dict__, out)

    @classmethod
    def load_all(cls, run_dir: Path) -> list[SweepRecord]:
        records = []
        for path in sorted(run_dir.glob("sweep-*.json")):
            raw = json.loads(path.read_text())
            records.append(
                cls(
                    raw["worker"],
                    raw["secrets"],
                    [tuple(h) for h in raw["haystacks"]],
                    [tuple(c) for c in raw["commands"]],
                )
            )
        return records


def secret_fragments(text: str) -> list[str]:
    """What would betray a secret: each line of its body (PEM/OpenSSH armour dropped) and the body joined.

    Lines shorter than 16 characters (a final base64 line, say) would match by chance and are left out;
    the joined body still covers them.
    """
    body = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("-----")]
    fragments = [ln for ln in body if len(ln) >= 16]
    joined = "".join(body)
    if joined not in fragments:
        fragments.append(joined)
    return fragments


def find_secrets(haystack: str, secrets: dict[str, str]) -> list[str]:
    """Labels of the secrets any fragment of which occurs in `haystack`."""
    return [label for label, text in secrets.items() if any(f in haystack for f in secret_fragments(text))]


# The labels the secret module (tests/engine/test_secrets_everywhere.py) registers: when it ran, the sweep must
# have seen every kind of command, a failed one, a TLS key and a config secret, or it proves too little.
CONFIG_SECRET_LABEL = "config secret ssh_private_key"
COMMANDS_SWEPT = {"preview", "up", "refresh", "destroy", "stack export"}
PLANTED_LABEL = "planted"


@dataclass
class SweepResult:
    figure: str
    problems: list[str]


def sweep(records: list[SweepRecord]) -> SweepResult:
    """Search everything every process recorded for every secret any process was given."""
    secrets: dict[str, str] = {}
    for record in records:
        secrets.update(record.secrets)
    commands = [c for record in records for c in record.commands]
    if not commands:
        return SweepResult("secret sweep: no engine command ran", [])
    problems = []
    if CONFIG_SECRET_LABEL in secrets:
        kinds = {name for name, _ok in commands}
        if not kinds >= COMMANDS_SWEPT:
            problems.append(f"the sweep saw no {sorted(COMMANDS_SWEPT - kinds)} command")
        if all(ok for _name, ok in commands):
            problems.append("the sweep saw no failed command")
        if not any("PRIVATE KEY" in t and "OPENSSH" not in t for t in secrets.values()):
            problems.append("the sweep was given no TLS key")
    texts = [(f"{r.worker}: {where}", text) for r in records for where, text in r.haystacks]
    problems += [
        f"{label} in {where}"
        for where, text in texts
        for label in find_secrets(text, secrets)
        if label != PLANTED_LABEL
    ]
    figure = (
        f"secret sweep: {len(secrets)} secrets searched in {len(texts)} texts from {len(records)} test process(es)"
        f" ({len(commands)} engine commands): {len(problems)} problem(s)"
    )
    return SweepResult(figure, problems)


def worker_name() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")
