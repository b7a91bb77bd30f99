"""The RHEL System Role for Postfix on the benchmark's fleet: the same eight limits, applied by Ansible.

The role comes unmodified from `../shared/anchors/` (linux-system-roles/postfix 1.8.1-2-ge2d9e2a, GPL-3.0) and
runs under a pinned ansible-core in a virtualenv of the benchmark's own (`.cache/bench-ansible`), never the
project's. Ansible logs in over SSH as root with the bed's client key and checks each host's key against the bed's
known_hosts file. Settings are Ansible's defaults (forks 5, pipelining off, facts gathered, OpenSSH with
ControlPersist), as the role was measured before, with two adaptations to the test hosts, both in the play and
the inventory, none in the role's files:

- the hosts have no init system (a host's first process is the bed's own), so the role's `service` tasks go to
  `ansible_library/service.py`, which starts and restarts Postfix with `postfix start` and `postfix stop; postfix
  start`, as Debian's init script does, and leaves boot-time enablement alone (a test host never boots);
- the role's package step (`package: name=postfix state=present`) runs as it is: the hosts see the machine's
  Debian packages, where python3-apt and postfix are installed, so it only confirms the package.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
ARCHIVE_NAME = "linux-system-roles-postfix-1.8.1-2-ge2d9e2a.tar.gz"
ANCHORS_DIR = PROJECT_DIR.parent / "shared" / "anchors"
ROLE_NAME = "linux-system-roles.postfix"
REQUIREMENTS = Path(__file__).resolve().parent / "requirements-ansible.txt"
SHIM_DIR = Path(__file__).resolve().parent / "ansible_library"
VENV_DIR = PROJECT_DIR / ".cache" / "bench-ansible"
# Ansible's default, and the number the role was measured with before.
FORKS = 5


class RoleError(RuntimeError):
    pass


def archive_path(anchors: Path = ANCHORS_DIR) -> Path | None:
    found = anchors / ARCHIVE_NAME
    return found if found.is_file() else None


def not_measured_line(anchors: Path = ANCHORS_DIR) -> str | None:
    """One line saying why the role's column is missing, or None when it can be measured."""
    if archive_path(anchors) is None:
        return f"RHEL System Role: not measured ({anchors / ARCHIVE_NAME} is not there)"
    return None


def ensure_ansible(venv: Path = VENV_DIR, requirements: Path = REQUIREMENTS) -> Path:
    """ansible-playbook of the pinned ansible-core in the bench's own virtualenv; installed once per pin."""
    stamp = venv / "requirements.sha256"
    wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
    playbook = venv / "bin" / "ansible-playbook"
    if playbook.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return playbook
    if venv.exists():
        shutil.rmtree(venv)
    # The interpreter the project's .venv was made from: the same Python, with none of the project's packages.
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "-q",
            "--require-hashes",
            "--only-binary=:all:",
            "-r",
            str(requirements),
        ],
        check=True,
    )
    stamp.write_text(wanted + "\n")
    return playbook


def unpack_role(archive: Path, roles_dir: Path) -> Path:
    """The role's folder under `roles_dir`, named as Ansible looks it up; the archive's files as they are."""
    target = roles_dir / ROLE_NAME
    if target.exists():
        shutil.rmtree(target)
    roles_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tops = {Path(m.name).parts[0] for m in tar.getmembers() if m.name.strip("./")}
        if len(tops) != 1:
            raise RoleError(f"{archive}: expected one top folder, found {sorted(tops)}")
        tar.extractall(roles_dir, filter="data")
    (roles_dir / tops.pop()).rename(target)
    return target


@dataclass(frozen=True)
class Inventory:
    """The fleet as Ansible sees it: name -> address, all reached as root with one key and one known_hosts."""

    hosts: Mapping[str, str]
    key_file: str
    known_hosts: str


def yaml_text(data: object) -> str:
    # JSON is YAML: no quoting rule of YAML's own can turn a value like `$mynetworks, 10.0.0.1` into another type.
    return json.dumps(data, indent=2) + "\n"


def render_play(limits: Mapping[str, object]) -> str:
    """The play of the role's README, with the limits as `postfix_conf` (each value as Postfix writes it)."""
    play = [
        {
            "name": "Manage postfix",
            "hosts": "all",
            "vars": {
                "postfix_check": True,
                "postfix_conf": {name: str(value) for name, value in limits.items()},
            },
            # The test hosts have no init system: the role's service tasks use the shim (module docstring).
            "module_defaults": {"service": {"use": "service"}},
            "roles": [ROLE_NAME],
        }
    ]
    return yaml_text(play)


def render_inventory(inventory: Inventory) -> str:
    return yaml_text(
        {
            "all": {
                "hosts": {name: {"ansible_host": address} for name, address in inventory.hosts.items()},
                "vars": {"ansible_user": "root"},
            }
        }
    )


def render_config(work: Path, inventory: Inventory, forks: int = FORKS) -> str:
    """ansible.cfg: Ansible's defaults, the bed's key and known_hosts (checked), the shim, no retry files."""
    ssh_args = (
        "-C -o ControlMaster=auto -o ControlPersist=60s "
        f"-o UserKnownHostsFile={inventory.known_hosts} -o StrictHostKeyChecking=yes "
        "-o IdentitiesOnly=yes -o BatchMode=yes"
    )
    return "\n".join(
        [
            "[defaults]",
            f"inventory = {work / 'inventory.yml'}",
            f"roles_path = {work / 'roles'}",
            f"library = {SHIM_DIR}",
            f"forks = {forks}",
            "interpreter_python = /usr/bin/python3",
            "host_key_checking = True",
            f"private_key_file = {inventory.key_file}",
            "retry_files_enabled = False",
            f"local_tmp = {work / 'ansible-local'}",
            "",
            "[ssh_connection]",
            f"ssh_args = {ssh_args}",
            f"control_path_dir = {work / 'cp'}",
            "",
        ]
    )


@dataclass
class RoleRun:
    """One folder with the role, the play, the inventory and ansible.cfg; `apply()` runs the play once."""

    playbook_bin: Path
    work: Path
    inventory: Inventory
    log_dir: Path | None = None
    runs: int = 0

    @classmethod
    def prepare(
        cls,
        archive: Path,
        work: Path,
        inventory: Inventory,
        limits: Mapping[str, object],
        forks: int = FORKS,
        log_dir: Path | None = None,
    ) -> RoleRun:
        playbook_bin = ensure_ansible()
        work.mkdir(parents=True, exist_ok=True)
        unpack_role(archive, work / "roles")
        (work / "play.yml").write_text(render_play(limits))
        (work / "inventory.yml").write_text(render_inventory(inventory))
        (work / "ansible.cfg").write_text(render_config(work, inventory, forks))
        return cls(playbook_bin, work, inventory, log_dir)

    def env(self) -> dict[str, str]:
        import os

        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PYTHON"))}
        env["ANSIBLE_CONFIG"] = str(self.work / "ansible.cfg")
        env["HOME"] = str(self.work)  # ~/.ansible of the bench, not the user's
        return env

    def apply(self) -> str:
        """ansible-playbook play.yml; its output, or RoleError with the end of it."""
        done = subprocess.run(
            [str(self.playbook_bin), str(self.work / "play.yml")],
            cwd=self.work,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=3600,
        )
        self.runs += 1
        if self.log_dir is not None:
            name = f"bench-role-{len(self.inventory.hosts)}-run{self.runs}.log"
            (self.log_dir / name).write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
            raise RoleError(f"ansible-playbook exited {done.returncode}:\n{tail}")
        return done.stdout

    def close(self) -> None:
        """End the SSH master connections ControlPersist keeps open (they would linger up to 60 s)."""
        for socket in (self.work / "cp").glob("*"):
            subprocess.run(
                ["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "bench-control"],
                capture_output=True,
                timeout=10,
                check=False,
            )


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP of ansible-playbook's output: host -> {ok, changed, unreachable, failed, ...}."""
    found: dict[str, dict[str, int]] = {}
    in_recap = False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        if not in_recap or ":" not in line:
            continue
        host, _, rest = line.partition(":")
        counts = {}
        for item in rest.split():
            key, sep, value = item.partition("=")
            if sep and value.isdigit():
                counts[key] = int(value)
        if counts:
            found[host.strip()] = counts
    return found


def changed_hosts(output: str) -> list[str]:
    return sorted(host for host, counts in recap(output).items() if counts.get("changed", 0) > 0)


def failed_hosts(output: str) -> list[str]:
    return sorted(
        host
        for host, counts in recap(output).items()
        if counts.get("failed", 0) > 0 or counts.get("unreachable", 0) > 0
    )


def hosts_named(names: Sequence[str], addresses: Sequence[str]) -> dict[str, str]:
    return dict(zip(names, addresses, strict=True))
