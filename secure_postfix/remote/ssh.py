"""One SSH connection to one host, used for every command of one provider operation.

Host keys are pinned: the key the stack config gives is the only one accepted,
unless the user opted out explicitly. Commands are argv lists, quoted here, so
no value ever reaches a shell unquoted. Nothing secret is ever put in a message.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import select
import shlex
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import paramiko

from secure_postfix.core.defaults import SSH_PORT, SSH_USER

if TYPE_CHECKING:
    from secure_postfix.remote.host_lock import HostLock
    from secure_postfix.remote.jump import Credentials, Tunnel

# paramiko logs transport chatter; the provider's stderr ends up in the CLI output.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)

# The host checks what arrived against the announced length and SHA-256 before the rename: a link
# that drops mid-send, or a controller that dies, leaves a short temporary file, never a short live one.
# With `expect` (the SHA-256 the live file had when it was read, "-" for absent) the rename is a
# compare-and-swap: a file changed meanwhile, by hand or by another tool, is left as it is.
# The temporary file gets its final mode and owner while still empty, so a key is never readable
# under a looser mode, not even for a moment. No symlink is followed: neither the file nor its
# folder may be one, and the folder must be root's and writable by root alone.
# With SELinux on, the temporary file takes the live file's context before the rename (as it takes its mode and
# owner), and a file that did not exist gets the policy's context for its path (restorecon) after it.
ATOMIC_WRITE = r"""
set -eu
path=$1 mode=$2 owner=$3 age=$4 size=$5 digest=$6 expect=$7
dir=$(dirname -- "$path")
base=$(basename -- "$path")
refuse() { echo "$1" >&2; exit 67; }
[ -L "$dir" ] && refuse "$dir is a symlink"
[ -d "$dir" ] || refuse "$dir is not a directory"
[ -L "$path" ] && refuse "$path is a symlink"
case $(stat -c '%u %A' -- "$dir") in
  0\ d????-??-?*) ;;
  *) refuse "$dir is not owned by root or is writable by others" ;;
esac
tmp=$(mktemp "$dir/.$base.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
trap 'exit 129' HUP INT TERM PIPE
if [ -e "$path" ]; then
  chown --reference="$path" -- "$tmp"
  chmod --reference="$path" -- "$tmp"
fi
if [ -n "$owner" ]; then chown -- "$owner" "$tmp"; fi
if [ -n "$mode" ]; then chmod -- "$mode" "$tmp"; fi
selinux=0
if command -v selinuxenabled >/dev/null 2>&1 && selinuxenabled; then selinux=1; fi
new=0
[ -e "$path" ] || new=1
if [ "$selinux" = 1 ] && [ "$new" = 0 ]; then chcon --reference="$path" -- "$tmp"; fi
cat > "$tmp"
got=$(stat -c %s -- "$tmp")
sum=$(sha256sum < "$tmp")
if [ "$got" != "$size" ]; then printf 'only %s of %s bytes arrived\n' "$got" "$size" >&2; exit 65; fi
if [ "${sum%% *}" != "$digest" ]; then echo 'the bytes that arrived differ from those sent' >&2; exit 65; fi
if [ "$age" -gt 0 ]; then touch -d "@$(( $(date +%s) - age ))" -- "$tmp"; fi
if [ -n "$expect" ]; then
  if [ -e "$path" ]; then cur=$(sha256sum < "$path"); cur=${cur%% *}; else cur=-; fi
  if [ "$cur" != "$expect" ]; then echo "$path changed since it was read" >&2; exit 66; fi
fi
mv -f -- "$tmp" "$path"
trap - EXIT
if [ "$selinux" = 1 ] && [ "$new" = 1 ]; then restorecon -- "$path"; fi
"""
# What one command may write back (stdout and stderr together). The one provider process serves every host:
# a host streaming gigabytes within its time limit must not be able to fill it.
MAX_OUTPUT_BYTES = 64 * 1024 * 1024
# How much of a log's new lines a verdict reads: the daemon's own lines come first after its reload.
MAX_LOG_BYTES = 4 * 1024 * 1024

_CUT_SHORT = 65
_CHANGED_MEANWHILE = 66
_UNSAFE_PATH = 67


class RemoteError(Exception):
    """Something went wrong talking to a host; the message names the host."""


class ChangedMeanwhileError(RemoteError):
    """The live file is no longer the one read at the start; nothing was written."""


class HostKeyError(RemoteError):
    """The host presented a key other than the pinned one (or none was pinned)."""


class CommandError(RemoteError):
    def __init__(self, target: str, command: str, rc: int, stderr: str):
        detail = stderr.strip() or "(no output)"
        super().__init__(f"{target}: {command} failed with exit code {rc}: {detail}")
        self.rc = rc
        self.stderr = stderr


def named_host(name: str, address: str) -> str:
    """How messages name a host: `edge (10.0.0.12)`, or the address alone when the stack gave no other name."""
    return f"{name} ({address})" if name and name != address else address


@dataclass(frozen=True)
class SshTarget:
    """Where and how to log in. Field names follow pulumi_command.remote.ConnectionArgs."""

    host: str
    private_key: str | None
    port: int = SSH_PORT
    user: str = SSH_USER
    private_key_password: str | None = None
    host_key: str | None = None
    insecure_ignore_host_key: bool = False
    use_sudo: bool = False
    connect_timeout: float = 15.0
    command_timeout: float = 120.0
    connect_attempts: int = 3
    # Traffic on an idle connection, so that NAT and firewall state does not expire during a long apply.
    keepalive_interval: float = 15.0
    # How to log in, tried in this order: "private_key" (the key above), "agent" (see jump.py).
    auth_methods: tuple[str, ...] = ("private_key",)
    agent_socket: str | None = None  # the agent's UNIX socket; None: $SSH_AUTH_SOCK
    # Reached through this host (ProxyJump); its own host key is checked against its own pin.
    bastion: SshTarget | None = None
    bastion_name: str = ""
    # What the stack calls the host (`hosts.NAME`); messages lead with it, the address beside it.
    name: str = ""

    @property
    def address_label(self) -> str:
        """The address (and port when not 22): the host's identity, for locks."""
        return self.host if self.port == SSH_PORT else f"{self.host}:{self.port}"

    @property
    def identity(self) -> str:
        """The machine, for locks in the controller: its address, and the bastion's when it is reached through one
        (hosts with one private address behind two bastions are two machines)."""
        return self.address_label if self.bastion is None else f"{self.address_label} via {self.bastion.identity}"

    @property
    def label(self) -> str:
        return named_host(self.name, self.address_label)

    def __repr__(self) -> str:  # never show the key, even in a traceback
        return f"SshTarget(host={self.host!r}, port={self.port}, user={self.user!r})"


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")


def load_private_key(text: str, password: str | None = None, label: str = "") -> paramiko.PKey:
    """The login key; `label` names the host it is for in the error."""
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text), password=password)
        except (paramiko.SSHException, ValueError):
            continue
    where = f"{label}: " if label else ""
    raise RemoteError(
        f"{where}the SSH private key could not be read (expected an OpenSSH or PEM ed25519, ECDSA or RSA key"
        f"{', and its private_key_password' if password else ''})"
    )


def parse_host_keys(text: str, label: str = "") -> list[paramiko.PKey]:
    """Keys in authorized-keys form ("ssh-ed25519 AAAA... [comment]"), one per line; `label` names the host."""
    where = f"{label}: " if label else ""
    keys = []
    for line in text.strip().splitlines():
        parts = line.split()
        if len(parts) < 2:
            raise HostKeyError(f"{where}host_key line is not '<type> <base64>': {line[:60]!r}")
        entry = paramiko.hostkeys.HostKeyEntry.from_line(f"pinned {parts[0]} {parts[1]}")
        if entry is None or entry.key is None:
            raise HostKeyError(f"{where}host_key of type {parts[0]!r} is not one paramiko can verify")
        keys.append(entry.key)
    return keys


# The signature algorithms a host can prove each key type with (RSA keys sign with SHA-2 today).
_ALGORITHMS_OF_KEY_TYPE = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}


def disabled_host_key_algorithms(pinned_types: Sequence[str]) -> list[str]:
    """Host key algorithms to leave out of the negotiation so the server proves a pinned key.

    A server offering several keys otherwise shows the one the client prefers (ed25519), and a
    pinned ECDSA or RSA key would look like a mismatch. Nothing is left out when nothing is pinned.
    """
    if not pinned_types:
        return []
    wanted = {alg for t in pinned_types for alg in _ALGORITHMS_OF_KEY_TYPE.get(t, (t,))}
    return [alg for alg in paramiko.Transport._preferred_keys if alg not in wanted]


def fingerprint(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


def _tcp_connection(t: SshTarget) -> socket.socket:
    """The TCP connection an SSH session runs over, without Nagle's delay.

    Each command is a new channel, and each channel's small packets (open, exec, EOF, close) would otherwise
    wait for the peer's delayed ACK: about 40 ms per command here, a third of one host's whole apply.
    """
    sock = socket.create_connection((t.host, t.port), timeout=t.connect_timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        sock.close()
        raise
    return sock


class Session:
    """An open SSH connection. Use as a context manager."""

    def __init__(self, target: SshTarget):
        self.target = target
        self._client: paramiko.SSHClient | None = None
        self._tunnel: Tunnel | None = None

    def __enter__(self) -> Session:
        from secure_postfix.remote.jump import Tunnel

        self._tunnel = Tunnel(self.target) if self.target.bastion is not None else None
        try:
            self._client = self._connect()
        except BaseException:
            self._tunnel and self._tunnel.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._tunnel is not None:
            self._tunnel.close()
            self._tunnel = None

    # -- connecting -------------------------------------------------------
    def _connect(self) -> paramiko.SSHClient:
        from secure_postfix.remote.jump import credentials

        t = self.target
        pinned = self._pinned_keys()
        with contextlib.closing(credentials(t)) as keys:
            return self._connect_with(keys, pinned)

    def _connect_with(self, keys: Credentials, pinned: list[paramiko.PKey]) -> paramiko.SSHClient:
        t = self.target
        delay = 0.5
        for attempt in range(1, t.connect_attempts + 1):
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(_PinnedKeyPolicy(t, pinned))
            try:
                client.connect(
                    t.host,
                    port=t.port,
                    username=t.user,
                    auth_strategy=keys,
                    sock=self._tunnel.channel() if self._tunnel is not None else _tcp_connection(t),
                    timeout=t.connect_timeout,
                    banner_timeout=t.connect_timeout,
                    auth_timeout=t.connect_timeout,
                    allow_agent=False,
                    look_for_keys=False,
                    disabled_algorithms={"keys": disabled_host_key_algorithms([p.get_name() for p in pinned])},
                )
                transport = client.get_transport()
                if transport is not None and t.keepalive_interval > 0:
                    transport.set_keepalive(max(1, round(t.keepalive_interval)))
                return client
            except HostKeyError:
                client.close()
                raise
            except paramiko.AuthenticationException as exc:
                client.close()
                raise RemoteError(f"{t.label}: {keys.refused()}") from exc
            except (OSError, paramiko.SSHException, EOFError) as exc:
                client.close()
                if attempt == t.connect_attempts:
                    raise RemoteError(
                        f"{t.label}: could not open an SSH connection after {attempt} attempts: {exc}"
                    ) from None
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _pinned_keys(self) -> list[paramiko.PKey]:
        t = self.target
        if t.host_key:
            return parse_host_keys(t.host_key, t.label)
        if t.insecure_ignore_host_key:
            print(
                f"WARNING: SSH host key of {t.label} is NOT verified (insecure_ignore_host_key is set); "
                "anyone on the path can impersonate this host. Pin host_key for anything but a lab.",
                file=sys.stderr,
            )
            return []
        raise HostKeyError(
            f"{t.label}: no host_key is pinned for this host; refusing to connect. Set connection.host_key to "
            "the line from `ssh-keyscan -t ed25519 HOST` (without the host name), or set "
            "insecure_ignore_host_key: true for lab use."
        )

    @property
    def client(self) -> paramiko.SSHClient:
        if self._client is None:
            raise RemoteError(f"{self.target.label}: the SSH session is not open")
        return self._client

    # -- commands ---------------------------------------------------------
    def command_line(self, argv: Sequence[str]) -> str:
        line = shlex.join(argv)
        return f"sudo -n -- {line}" if self.target.use_sudo else line

    def run(
        self,
        argv: Sequence[str],
        stdin: bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
        what: str | None = None,
    ) -> Result:
        """Run argv on the host. `argv[0]` names the program; nothing is shell-expanded.

        Every step (channel, start, input, output, exit status) is bounded by the command's time
        limit, and every failure is a RemoteError naming the host and `what` (default: the command).
        """
        limit = timeout if timeout is not None else self.target.command_timeout
        label = self.target.label
        step = what or _describe(argv)
        chan = self.open_channel(step)
        finished, expired = threading.Event(), threading.Event()
        watchdog = threading.Timer(limit, self._expire, (chan, finished, expired, min(limit, 5.0)))
        watchdog.daemon = True
        started = time.monotonic()
        watchdog.start()
        try:
            chan.settimeout(limit)
            chan.exec_command(self.command_line(argv))
            # A command that stops reading its input (it refused early) closes the channel under the write:
            # what it wrote and its exit status say why. A channel that really failed fails while they are read.
            with contextlib.suppress(paramiko.SSHException, OSError):
                if stdin:
                    chan.sendall(stdin)
                chan.shutdown_write()
            out, err = _drain(chan, started + limit, label, step, limit)
            rc = chan.recv_exit_status()
            if expired.is_set():  # the channel closed under the command: no real exit status
                raise RemoteError(_late(label, step, limit))
        except (paramiko.SSHException, OSError, EOFError) as exc:
            if expired.is_set() or time.monotonic() - started >= limit:
                raise RemoteError(_late(label, step, limit)) from None
            raise RemoteError(f"{label}: {step}: the SSH channel failed: {exc or type(exc).__name__}") from None
        finally:
            finished.set()
            watchdog.cancel()
            chan.close()
        result = Result(rc, out, err)
        if check and rc != 0:
            raise CommandError(label, step, rc, result.err or result.out)
        return result

    def _expire(
        self, chan: paramiko.Channel, finished: threading.Event, expired: threading.Event, grace: float
    ) -> None:
        """A command's time is up: wake whatever waits for it.

        paramiko waits for exec_command's reply and the exit status without any limit, and a write
        to a dead link blocks inside the transport; closing the channel wakes the first, and if the
        caller is still stuck after `grace` the link is taken as dead and the connection closed.
        """
        expired.set()
        threading.Thread(target=_close_quietly, args=(chan,), daemon=True).start()
        if not finished.wait(grace):
            self.client.close()

    def open_channel(self, step: str) -> paramiko.Channel:
        """A new session channel, opened within the connect timeout; errors name host and step."""
        label, limit = self.target.label, self.target.connect_timeout
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise RemoteError(f"{label}: the SSH connection was lost before {step}")
        try:
            return transport.open_session(timeout=limit)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise RemoteError(
                f"{label}: could not open an SSH channel for {step} within {limit:g} s: {exc or type(exc).__name__}"
            ) from None

    def sh(
        self, script: str, *args: str, stdin: bytes | None = None, check: bool = True, what: str | None = None
    ) -> Result:
        """Run a fixed shell script; values go in as positional parameters, never into the text."""
        return self.run(["sh", "-c", script, "sh", *args], stdin=stdin, check=check, what=what)

    def host_lock(self, what: str, wait: float | None = None, stale_after: float | None = None) -> HostLock:
        """The host's own lock (see host_lock.py): applies from any controller take turns. The host frees it
        `stale_after` seconds (STALE_AFTER by default) after the last heartbeat of a controller that is gone."""
        from secure_postfix.remote.host_lock import DEFAULT_WAIT, STALE_AFTER, HostLock

        return HostLock(
            self, what, DEFAULT_WAIT if wait is None else wait, STALE_AFTER if stale_after is None else stale_after
        )

    def read_file(self, path: str) -> bytes | None:
        result = self.sh('if [ -e "$1" ]; then cat -- "$1"; else exit 3; fi', path, check=False, what=f"reading {path}")
        if result.rc == 3:
            return None
        if result.rc != 0:
            raise CommandError(self.target.label, f"reading {path}", result.rc, result.err)
        return result.stdout

    def file_size(self, path: str | None) -> int | None:
        """Size of a (log) file now, so that what is appended later can be read alone; None without a path."""
        if path is None:
            return None
        return int(self.sh('stat -c %s -- "$1" 2>/dev/null || echo 0', path).out.strip() or 0)

    def read_appended(self, path: str | None, offset: int | None) -> list[str]:
        """Lines added to `path` since it was `offset` bytes long."""
        if path is None or offset is None:
            return []
        script = 'tail -c +"$2" -- "$1" 2>/dev/null | head -c "$3" || true'
        return self.sh(script, path, str(offset + 1), str(MAX_LOG_BYTES)).out.splitlines()

    def write_file_atomic(
        self,
        path: str,
        data: bytes,
        mode: str = "",
        owner: str = "",
        age: int = 0,
        expect_sha256: str | None = None,
    ) -> None:
        """Write via a temporary file in the same directory, then rename: readers see old or new, never half.

        `age` sets the file's mtime that many seconds in the past (see PostfixHost.swap_in).
        With `expect_sha256` ("-" for a file that did not exist) the live file is replaced only if
        it still has that digest; otherwise ChangedMeanwhileError, and the live file is kept.
        """
        digest = hashlib.sha256(data).hexdigest()
        argv = atomic_write_argv(path, len(data), digest, mode, owner, age, expect_sha256 or "")
        result = self.run(argv, stdin=data, check=False, what=f"writing {path}")
        self.raise_for_write(path, result)

    def raise_for_write(self, path: str, result: Result) -> None:
        """The error for an atomic write of `path` that ended with `result` (see ATOMIC_WRITE); none if it worked."""
        if result.rc == _CUT_SHORT:
            raise RemoteError(
                f"{self.target.label}: the upload of {path} was cut short ({result.err.strip()}); "
                f"{path} was left as it was"
            )
        if result.rc == _UNSAFE_PATH:
            raise RemoteError(f"{self.target.label}: refusing to write {path}: {result.err.strip()}")
        if result.rc == _CHANGED_MEANWHILE:
            raise ChangedMeanwhileError(
                f"{self.target.label}: {path} was changed on the host after this operation read it (by hand or by "
                f"another tool); it was left as it is and nothing was written. Check the change, then run again."
            )
        if result.rc != 0:
            raise CommandError(self.target.label, f"writing {path}", result.rc, result.err or result.out)

    def open_tcp(self, host: str, port: int, timeout: float = 10.0) -> paramiko.Channel:
        """A TCP stream from the host itself (SSH port forwarding), for probing its local services."""
        transport = self.client.get_transport()
        if transport is None:
            raise RemoteError(f"{self.target.label}: SSH connection was lost")
        try:
            chan = transport.open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=timeout)
        except (paramiko.ChannelException, paramiko.SSHException, OSError) as exc:
            raise RemoteError(f"{self.target.label}: could not reach {host}:{port} from the host: {exc}") from None
        chan.settimeout(timeout)
        return chan


def atomic_write_argv(
    path: str, size: int, sha256: str, mode: str = "", owner: str = "", age: int = 0, expect: str = ""
) -> list[str]:
    """The host-side write of `size` bytes with digest `sha256` to `path` (see ATOMIC_WRITE)."""
    return ["sh", "-c", ATOMIC_WRITE, "sh", path, mode, owner, str(age), str(size), sha256, expect]


class _PinnedKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Accept exactly the pinned key(s); accept any key only when the user opted out."""

    def __init__(self, target: SshTarget, pinned: list[paramiko.PKey]):
        self.target = target
        self.pinned = pinned

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if not self.pinned and self.target.insecure_ignore_host_key:
            return
        if any(key.get_name() == p.get_name() and key.asbytes() == p.asbytes() for p in self.pinned):
            return
        expected = ", ".join(fingerprint(p) for p in self.pinned)
        raise HostKeyError(
            f"{self.target.label}: SSH host key mismatch: the host offered {fingerprint(key)}, the stack pins "
            f"{expected}. Refusing to connect: the host was rebuilt or someone is in the way. Verify the key "
            "out of band and update connection.host_key."
        )


def _drain(chan: paramiko.Channel, deadline: float, label: str, step: str, limit: float) -> tuple[bytes, bytes]:
    out, err = bytearray(), bytearray()
    # The channel's own pipe, readable once either stream has data or both have ended: the thread sleeps until the
    # host sends something. (Polling every few milliseconds, a fleet's threads woke thousands of times a second and
    # took CPU from the SSH work they wait for.)
    chan.fileno()
    while True:
        busy = False
        while chan.recv_ready():
            out += chan.recv(65536)
            busy = True
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
            busy = True
        if len(out) + len(err) > MAX_OUTPUT_BYTES:
            raise RemoteError(
                f"{label}: {step} wrote more than {MAX_OUTPUT_BYTES:,} bytes back; stopped reading it (a host "
                "sending that much would fill the controller that serves every host)"
            )
        drained = not chan.recv_ready() and not chan.recv_stderr_ready()
        if chan.exit_status_ready() and drained and (chan.eof_received or chan.closed):
            return bytes(out), bytes(err)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RemoteError(_late(label, step, limit))
        if busy:
            continue
        if chan.eof_received or chan.closed:
            # Both streams have ended (the pipe stays readable from now on): only the exit status is to come.
            chan.status_event.wait(min(remaining, 1.0))
        else:
            select.select([chan], [], [], min(remaining, 1.0))


def _close_quietly(chan: paramiko.Channel) -> None:
    # The connection is going down anyway; the waiting caller reports it.
    with contextlib.suppress(paramiko.SSHException, OSError, EOFError):
        chan.close()


def _late(label: str, step: str, limit: float) -> str:
    return f"{label}: {step} did not finish within {limit:g} s (the host or the link to it did not answer)"


def _describe(argv: Sequence[str]) -> str:
    """A short, secret-free description of a command for error messages."""
    if len(argv) > 1 and argv[0] in ("sh", "bash") and argv[1] == "-c":
        return "a shell script with arguments `" + " ".join(shlex.quote(a) for a in argv[4:]) + "`"
    return f"`{shlex.join(argv)}`"
