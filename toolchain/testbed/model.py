"""The bed as seen by tests: hosts, keys, and helpers to act inside a host."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .layout import STATE_FILE
from .proc import BASE_ENV, CommandError

STATE_VERSION = 1


@dataclass
class Host:
    name: str
    address: str
    hostname: str
    host_key: str
    pid: int
    # The host's folder on the controller (its private copies of /etc/postfix and the rest, its sshd config):
    # the same files the host sees, whichever root file system it runs.
    root: Path
    # The Debian release of its root file system (toolchain.testbed.rootfs), or None: the machine's own.
    release: str | None = None

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["root"] = str(self.root)
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Host:
        return cls(
            name=str(data["name"]),
            address=str(data["address"]),
            hostname=str(data["hostname"]),
            host_key=str(data["host_key"]),
            pid=int(str(data["pid"])),
            root=Path(str(data["root"])),
            release=str(data["release"]) if data.get("release") else None,
        )


@dataclass
class TestBed:
    # Keeps pytest from collecting this class when a test module imports it.
    __test__ = False

    dir: Path
    hosts: dict[str, Host]
    client_key_path: Path
    known_hosts_path: Path
    client_addresses: list[str]
    controller_address: str
    created_at: float = field(default=0.0)
    # Names of the fleet hosts (fleet mode), also in `hosts`; empty on the default bed.
    fleet: list[str] = field(default_factory=list)

    @property
    def tls_dir(self) -> Path:
        """The hosts' certificates (NAME.crt, NAME.key) and the CA that signed them (ca.crt, ca.key)."""
        return self.dir / "tls"

    @property
    def ca_path(self) -> Path:
        """The bed's CA certificate: what a test's client trusts, as a real client trusts a public CA."""
        return self.tls_dir / "ca.crt"

    def _nsenter(self, host: str) -> list[str]:
        pid = self.hosts[host].pid
        # -p makes nsenter fork, so the command is a member of the host's PID
        # namespace and dies with the host. -r and -w take the host's root and working directory (its
        # first process's): a host of another release runs with that release's root file system as /.
        return ["nsenter", "-t", str(pid), "-m", "-n", "-u", "-p", "-r", "-w", "--"]

    def run(self, host: str, command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run `bash -c command` inside the host.

        Output is captured through pipes: a daemon started here must redirect
        its fds (`</dev/null >/dev/null 2>&1`) or this call waits for it.
        """
        args = [*self._nsenter(host), "bash", "-c", command]
        proc = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=BASE_ENV,
            cwd="/",
        )
        if check and proc.returncode != 0:
            raise CommandError(proc.returncode, args, proc.stdout, proc.stderr)
        return proc

    def read_file(self, host: str, path: str) -> bytes:
        args = [*self._nsenter(host), "cat", "--", path]
        proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=30, env=BASE_ENV, cwd="/")
        if proc.returncode != 0:
            raise CommandError(proc.returncode, args, proc.stdout, proc.stderr)
        return proc.stdout

    def smtp_banner(self, host: str, timeout: float = 5, source: str | None = None) -> str:
        """One connection to port 25 from the root namespace; returns the greeting.

        The source address defaults to the controller's; anvil counts every
        connection against it, so rate-limit tests pick their own `source`.
        """
        address = self.hosts[host].address
        bind = (source, 0) if source else None
        with socket.create_connection((address, 25), timeout=timeout, source_address=bind) as sock:
            reader = sock.makefile("rb")
            line = reader.readline(1024).decode(errors="replace").rstrip("\r\n")
            if line.startswith("220"):
                sock.sendall(b"QUIT\r\n")
                reader.readline(1024)
            return line

    def wait_smtp(self, host: str, timeout: float = 90, source: str | None = None) -> None:
        """Wait for a `220 ` greeting on the host's port 25; TimeoutError if none."""
        deadline = time.monotonic() + timeout
        last = "no attempt"
        while True:
            attempt = max(0.5, min(5.0, deadline - time.monotonic()))
            try:
                banner = self.smtp_banner(host, timeout=attempt, source=source)
                if banner.startswith("220 "):
                    return
                last = f"unexpected greeting {banner!r}"
            except OSError as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no SMTP banner from {host} within {timeout}s ({last})")
            time.sleep(0.5)

    def restart_postfix(self, host: str) -> None:
        # A full stop/start clears smtpd throttling, which `postfix reload`
        # keeps; stop fails harmlessly when Postfix is already down.
        self.run(host, "postfix stop >/dev/null 2>&1; postfix start </dev/null")
        self.wait_smtp(host)

    def to_json(self) -> dict[str, object]:
        return {
            "version": STATE_VERSION,
            "dir": str(self.dir),
            "hosts": {name: host.to_json() for name, host in self.hosts.items()},
            "client_key_path": str(self.client_key_path),
            "known_hosts_path": str(self.known_hosts_path),
            "client_addresses": list(self.client_addresses),
            "controller_address": self.controller_address,
            "created_at": self.created_at,
            "fleet": list(self.fleet),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> TestBed:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported test bed state version {data.get('version')!r}")
        hosts = data["hosts"]
        addresses = data["client_addresses"]
        assert isinstance(hosts, dict) and isinstance(addresses, list)
        return cls(
            dir=Path(str(data["dir"])),
            hosts={name: Host.from_json(item) for name, item in hosts.items()},
            client_key_path=Path(str(data["client_key_path"])),
            known_hosts_path=Path(str(data["known_hosts_path"])),
            client_addresses=[str(a) for a in addresses],
            controller_address=str(data["controller_address"]),
            created_at=float(str(data.get("created_at", 0.0))),
            fleet=[str(name) for name in data.get("fleet") or []],  # type: ignore[union-attr]
        )

    def save(self) -> None:
        path = self.dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        os.replace(tmp, path)


def read_state(dir: Path) -> TestBed:
    path = dir / STATE_FILE
    return TestBed.from_json(json.loads(path.read_text()))
