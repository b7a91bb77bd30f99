"""What a generic tool does for the same change: one plain paramiko connection per host, a thread pool.

Per host: read the eight values, one `postconf -e` with all of them, `postfix check`, `postfix reload`. No
staging, no compare-and-swap, no probe, no rollback, no record of the originals.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import paramiko


@dataclass(frozen=True)
class Login:
    address: str
    host_key: str  # "TYPE BASE64", pinned
    key_file: str


def _client(login: Login) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    key_type, body = login.host_key.split()[:2]
    client.get_host_keys().add(login.address, key_type, paramiko.PKey.from_type_string(key_type, _b64(body)))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        login.address,
        username="root",
        key_filename=login.key_file,
        look_for_keys=False,
        allow_agent=False,
        timeout=15,
        banner_timeout=15,
        auth_timeout=15,
    )
    return client


def _b64(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


def _run(client: paramiko.SSHClient, command: str, address: str) -> str:
    _, stdout, stderr = client.exec_command(command, timeout=60)
    out = stdout.read().decode(errors="replace")
    rc = stdout.channel.recv_exit_status()
    if rc != 0:
        raise RuntimeError(f"{address}: {command!r} exited {rc}: {stderr.read().decode(errors='replace').strip()}")
    return out


def read_command(names: Sequence[str]) -> str:
    return "postconf -h " + " ".join(shlex.quote(n) for n in names)


def change_commands(values: Mapping[str, object]) -> list[str]:
    assignments = " ".join(shlex.quote(f"{k}={v}") for k, v in values.items())
    return [f"postconf -e {assignments}", "postfix check", "postfix reload"]


def read_host(login: Login, names: Sequence[str]) -> list[str]:
    client = _client(login)
    try:
        return _run(client, read_command(names), login.address).splitlines()
    finally:
        client.close()


def change_host(login: Login, values: Mapping[str, object]) -> None:
    client = _client(login)
    try:
        _run(client, read_command(list(values)), login.address)
        for command in change_commands(values):
            _run(client, command, login.address)
    finally:
        client.close()


def read_all(logins: Sequence[Login], names: Sequence[str], threads: int) -> list[list[str]]:
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(lambda login: read_host(login, names), logins))


def change_all(logins: Sequence[Login], values: Mapping[str, object], threads: int) -> None:
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda login: change_host(login, values), logins))
