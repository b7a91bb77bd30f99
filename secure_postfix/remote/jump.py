"""Reaching a host through a bastion (jump host), and logging in with keys from an SSH agent.

A host behind a bastion is reached through a `direct-tcpip` channel of an SSH connection to
the bastion; the target's own SSH session runs inside that channel, so its host key is still
checked against the target's pin, end to end. The bastion's key is checked against the
bastion's own pin before anything is sent anywhere.

The dynamic provider runs several operations at once, on threads of one process. One bastion
connection serves them all: it is shared by the bastion's identity, counted by its users, and
closed a short while after the last one leaves (so that operations that follow each other in
one `up` do not log in again).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time
from dataclasses import dataclass, field

import paramiko
from paramiko.auth_strategy import AuthSource, AuthStrategy, InMemoryPrivateKey

from secure_postfix.remote.ssh import HostKeyError, RemoteError, Session, SshTarget, load_private_key

AGENT = "agent"
PRIVATE_KEY = "private_key"
AUTH_METHODS = (AGENT, PRIVATE_KEY)
# Long enough to carry one bastion connection from one resource operation of an `up` to the next.
LINGER_SECONDS = 30.0
# A bastion login that failed is not tried again for this long: the hosts behind it that were waiting for it fail
# at once, each naming itself, instead of each repeating the same login and its timeout.
RETRY_LOGIN_AFTER = 30.0


# -- keys: the private key from stack config, an SSH agent ---------------------------------------------
class _SocketAgent(paramiko.agent.AgentSSH):
    """The agent listening on one UNIX socket (paramiko's Agent only reads SSH_AUTH_SOCK)."""

    def __init__(self, path: str, timeout: float):
        super().__init__()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(timeout)
        try:
            conn.connect(path)
            self._connect(conn)
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        self._close()


@dataclass
class Credentials(AuthStrategy):
    """The login methods a target's stack config chose, in its order; `tried` says how each one went."""

    target: SshTarget
    tried: list[str] = field(default_factory=list)
    _pkey: paramiko.PKey | None = None
    _agents: dict[str, _SocketAgent | str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(ssh_config=None)
        t = self.target
        unknown = [m for m in t.auth_methods if m not in AUTH_METHODS]
        if unknown or not t.auth_methods:
            raise RemoteError(f"{t.label}: SSH login methods must be among {', '.join(AUTH_METHODS)}, got {unknown}")
        # Read before any connection: a key that cannot be read is a config error, not a refused login.
        if PRIVATE_KEY in t.auth_methods and t.private_key:
            self._pkey = load_private_key(t.private_key, t.private_key_password, t.label)

    def get_sources(self):  # type: ignore[override]
        self.tried = []
        for method in self.target.auth_methods:
            if method == PRIVATE_KEY:
                if self._pkey is None:
                    self.tried.append("the private key (none is set in stack config)")
                    continue
                self.tried.append("the private key from stack config")
                yield InMemoryPrivateKey(self.target.user, self._pkey)
            else:
                yield from self._agent_sources()

    def _agent_sources(self) -> list[AuthSource]:
        t = self.target
        path = t.agent_socket or os.environ.get("SSH_AUTH_SOCK")
        if not path:
            self.tried.append("the SSH agent (no agent socket is set in stack config, and SSH_AUTH_SOCK is not set)")
            return []
        agent = self._agents.get(path)
        if agent is None:
            try:
                agent = _SocketAgent(path, t.connect_timeout)
            except (OSError, paramiko.SSHException) as exc:
                agent = f"it did not answer: {exc or type(exc).__name__}"
            self._agents[path] = agent
        if isinstance(agent, str):
            self.tried.append(f"the SSH agent at {path} ({agent})")
            return []
        keys = agent.get_keys()
        self.tried.append(f"the SSH agent at {path} ({len(keys)} key{'' if len(keys) == 1 else 's'})")
        return [InMemoryPrivateKey(t.user, key) for key in keys]

    def close(self) -> None:
        for agent in self._agents.values():
            if not isinstance(agent, str):
                with contextlib.suppress(OSError, paramiko.SSHException):
                    agent.close()
        self._agents.clear()

    def refused(self) -> str:
        return f"SSH login as {self.target.user!r} was refused; tried {'; '.join(self.tried) or 'nothing'}"


def credentials(target: SshTarget) -> Credentials:
    return Credentials(target)


# -- the bastion -----------------------------------------------------------------------------------------
def _identity(bastion: SshTarget) -> tuple:
    """What makes two bastion connections interchangeable: where, as whom, which pin, which keys."""
    secret = hashlib.sha256((bastion.private_key or "").encode()).hexdigest()
    return (
        bastion.host.lower(),
        bastion.port,
        bastion.user,
        bastion.host_key,
        bastion.insecure_ignore_host_key,
        bastion.auth_methods,
        bastion.agent_socket,
        secret,
    )


@dataclass
class _Shared:
    session: Session
    users: int = 0
    closer: threading.Timer | None = None
    # A channel open failed on the connection itself (not a refusal by the bastion): never hand it out again.
    broken: bool = False

    @property
    def alive(self) -> bool:
        if self.broken:
            return False
        try:
            transport = self.session.client.get_transport()
        except RemoteError:  # closed
            return False
        return transport is not None and transport.is_active()


_POOL: dict[tuple, _Shared] = {}
_POOL_LOCK = threading.Lock()
# One per bastion: a login that hangs holds back only the hosts behind that bastion.
_LOGIN_LOCKS: dict[tuple, threading.Lock] = {}
# Per bastion, its last failed login: (when, the failure, the host it was for).
_FAILED: dict[tuple, tuple[float, RemoteError, str]] = {}


def bastion_label(target: SshTarget) -> str:
    bastion = target.bastion
    assert bastion is not None
    name = target.bastion_name or bastion.label
    return name if name == bastion.label else f"{name} ({bastion.label})"


class Tunnel:
    """One target's use of its bastion's shared connection; `close` gives it back."""

    def __init__(self, target: SshTarget):
        if target.bastion is None:
            raise RemoteError(f"{target.label}: no bastion is set for this host")
        self.target = target
        self._key = _identity(target.bastion)
        self._shared = _acquire(self._key, target)
        self._closed = False

    def channel(self) -> paramiko.Channel:
        """A fresh stream from the bastion to the target's SSH port."""
        t = self.target
        transport = self._shared.session.client.get_transport()
        where = f"bastion {bastion_label(t)}"
        if transport is None or not transport.is_active():
            raise RemoteError(f"{where}: the SSH connection to the bastion was lost")
        try:
            return transport.open_channel("direct-tcpip", (t.host, t.port), ("127.0.0.1", 0), timeout=t.connect_timeout)
        except paramiko.ChannelException as exc:  # the bastion answered: it cannot reach the target
            raise RemoteError(
                f"{t.label}: the bastion {bastion_label(t)} could not open a connection to {t.host}:{t.port}: "
                f"{exc or type(exc).__name__}"
            ) from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            # No answer on the connection itself (half open): the next host gets a fresh login.
            self._shared.broken = True
            raise RemoteError(
                f"{t.label}: the bastion {bastion_label(t)} could not open a connection to {t.host}:{t.port}: "
                f"{exc or type(exc).__name__}"
            ) from None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _release(self._key, self._shared)


def _acquire(key: tuple, target: SshTarget) -> _Shared:
    with _POOL_LOCK:
        login_lock = _LOGIN_LOCKS.setdefault(key, threading.Lock())
    # Hosts behind one bastion that start at once wait for one login; other bastions' hosts do not wait.
    with login_lock:
        with _POOL_LOCK:
            shared = _POOL.get(key)
            if shared is not None and shared.alive:
                return _take(shared)
            stale = _POOL.pop(key, None)
        if stale is not None:
            stale.session.__exit__(None, None, None)
        _raise_recent_failure(key, target)
        try:
            fresh = _Shared(_open_bastion(target))
        except RemoteError as exc:
            _FAILED[key] = (time.monotonic(), exc, target.label)
            raise type(exc)(f"{target.label}: not reached: {exc}") from None
        _FAILED.pop(key, None)
        with _POOL_LOCK:
            _POOL[key] = fresh
            return _take(fresh)


def _raise_recent_failure(key: tuple, target: SshTarget) -> None:
    """The bastion's login failed a moment ago (for another host): say so for this host, without a new try."""
    failed = _FAILED.get(key)
    if failed is None or time.monotonic() - failed[0] > RETRY_LOGIN_AFTER:
        return
    when, exc, first = failed
    raise type(exc)(
        f"{target.label}: not reached: {exc} (that login failed {time.monotonic() - when:.0f} s ago for {first}; "
        f"not tried again within {RETRY_LOGIN_AFTER:.0f} s)"
    )


def _take(shared: _Shared) -> _Shared:
    """One more user (under _POOL_LOCK): an idle close that was pending is called off."""
    if shared.closer is not None:
        shared.closer.cancel()
        shared.closer = None
    shared.users += 1
    return shared


def _release(key: tuple, shared: _Shared) -> None:
    with _POOL_LOCK:
        shared.users -= 1
        if shared.users > 0:
            return
        closer = threading.Timer(LINGER_SECONDS, _close_idle, (key, shared))
        closer.daemon = True
        shared.closer = closer
        closer.start()


def _close_idle(key: tuple, shared: _Shared) -> None:
    with _POOL_LOCK:
        if shared.users > 0 or _POOL.get(key) is not shared:
            return
        _POOL.pop(key, None)
    shared.session.__exit__(None, None, None)


def close_all() -> None:
    """Close every idle bastion connection now (tests, and a provider that shuts down)."""
    with _POOL_LOCK:
        idle = [(k, s) for k, s in _POOL.items() if s.users == 0]
        for key, shared in idle:
            _POOL.pop(key, None)
            if shared.closer is not None:
                shared.closer.cancel()
    for _key, shared in idle:
        shared.session.__exit__(None, None, None)


def _open_bastion(target: SshTarget) -> Session:
    """Log in to the bastion; every failure names the bastion, never the target behind it."""
    assert target.bastion is not None
    where = f"bastion {bastion_label(target)}"
    session = Session(target.bastion)
    try:
        return session.__enter__()
    except HostKeyError as exc:
        raise HostKeyError(f"{where}: {exc}") from None
    except RemoteError as exc:
        raise RemoteError(f"{where}: {exc}") from None
