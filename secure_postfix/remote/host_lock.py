"""A lock on the host itself, so that applies from any number of controllers take turns.

The lock is a `flock` held by a process on the host whose input is the SSH channel: when the
channel closes (the apply is over, or the controller died and its connection dropped), that
process reads end of input and exits, and the kernel releases the lock. Nothing is left to clean.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
from datetime import UTC, datetime

import paramiko

from secure_postfix.remote.ssh import RemoteError, Session

# A folder only root can write, so no other user can plant a symlink where the lock file goes.
LOCK_FILE = "/run/secure-postfix/host.lock"
DEFAULT_WAIT = 120.0
_HELD = 75
# What the controller keeps of the lock script's output, and shows of the holder's line.
MAX_OUTPUT = 65536
HOLDER_CHARS = 300

_TAKE = r"""
set -u
lock=$1 wait=$2 who=$3 nonce=$4
if [ "$(id -u)" != 0 ]; then
  echo "it needs root: log in as root, or set use_sudo for a user with sudo rights" >&2; exit 91
fi
mkdir -p -m 0700 -- "${lock%/*}" || exit 90
[ -L "$lock" ] && { echo "$lock is a symlink" >&2; exit 90; }
exec 9>>"$lock" || exit 90
if ! flock -w "$wait" 9; then cat -- "$lock"; exit 75; fi
printf '%s, host pid %s\n' "$who" "$$" > "$lock"
echo "LOCKED $nonce"
exec cat >/dev/null
"""


class HostLockError(RemoteError):
    """Another apply held the host's lock for longer than we wait."""


class HostLock:
    """Context manager: the host's lock, held for the `with` block."""

    def __init__(self, session: Session, what: str, wait: float = DEFAULT_WAIT):
        self.s = session
        self.what = what
        self.wait = wait
        self._chan: paramiko.Channel | None = None

    def __enter__(self) -> HostLock:
        label = self.s.target.label
        since = f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"
        who = f"{self.what} from {socket.gethostname()} (pid {os.getpid()}) since {since}"
        # A login may print (a profile's echo, a motd script): the line with this nonce, and only it, says "ours".
        nonce = secrets.token_hex(8)
        argv = ["sh", "-c", _TAKE, "sh", LOCK_FILE, f"{self.wait:g}", who, nonce]
        chan = self.s.open_channel("taking the host lock")
        # Bounded like any command: the wait itself plus the usual time to start one.
        limit = self.wait + self.s.target.connect_timeout
        watchdog = threading.Timer(limit, chan.close)
        watchdog.daemon = True
        watchdog.start()
        try:
            chan.settimeout(limit)
            chan.exec_command(self.s.command_line(argv))
            out, locked = _read_until_exit_or_line(chan, time.monotonic() + limit, f"LOCKED {nonce}".encode())
        except (paramiko.SSHException, OSError, EOFError) as exc:
            chan.close()
            raise RemoteError(f"{label}: taking the host lock {LOCK_FILE} failed: {exc}") from None
        finally:
            watchdog.cancel()
        if locked:
            self._chan = chan
            return self
        status = chan.recv_exit_status() if chan.status_event.wait(5) else -1
        err = chan.recv_stderr(4096).decode(errors="replace") if chan.recv_stderr_ready() else ""
        # The last line is the script's own; a login may print notices of its own before it.
        err = ([ln for ln in err.splitlines() if ln.strip()] or [""])[-1].strip()
        chan.close()
        if status == _HELD:
            holder = holder_text(out) or "a holder that left no name"
            raise HostLockError(
                f"{label}: another apply holds the host lock {LOCK_FILE}: {holder}. Waited {self.wait:g} s for it; "
                "nothing was changed. Run this apply again when that one is over."
            )
        raise RemoteError(f"{label}: could not take the host lock {LOCK_FILE}: {err or f'exit code {status}'}")

    def __exit__(self, *exc: object) -> None:
        if self._chan is not None:
            # End of input: the holder process exits and the lock goes with it.
            with contextlib.suppress(paramiko.SSHException, OSError, EOFError):
                self._chan.shutdown_write()
            self._chan.close()
            self._chan = None


def holder_text(out: bytes) -> str:
    """The holder's line as the lock file gives it: the last line (a login's notices come first), without
    control characters, at most HOLDER_CHARS long. The host wrote it; the operator's terminal shows it."""
    lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.strip()]
    text = "".join(ch if ch.isprintable() else "?" for ch in (lines[-1].strip() if lines else ""))
    return text if len(text) <= HOLDER_CHARS else text[: HOLDER_CHARS - 1] + "…"


def _read_until_exit_or_line(chan: paramiko.Channel, deadline: float, mark: bytes) -> tuple[bytes, bool]:
    """(output, True) once the line `mark` came (the lock is ours), or (output, False) when the script ended.

    What is kept is bounded (the last MAX_OUTPUT bytes): a host streaming output cannot fill the controller.
    """
    data = b""
    chan.settimeout(0.2)
    while True:
        try:
            chunk = chan.recv(4096)
        except TimeoutError:
            chunk = None
        if chunk:
            data = (data + chunk)[-MAX_OUTPUT:]
            if mark in data.splitlines():
                return data, True
        elif chunk == b"":
            return data, False
        elif chan.closed:
            # Closed while the read above waited: what arrived with the close is still buffered.
            while rest := chan.recv(4096):
                data = (data + rest)[-MAX_OUTPUT:]
            return data, mark in data.splitlines()
        if time.monotonic() > deadline:
            raise TimeoutError("no answer from the host in time")
