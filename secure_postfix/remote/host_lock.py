"""A lock on the host itself, so that applies from any number of controllers take turns.

The lock is a `flock` held by a process on the host whose input is the SSH channel. While the
lock is held, the controller sends that process a heartbeat line every HEARTBEAT seconds. The
process exits, and the kernel releases the lock, at end of input (the apply is over, or the
controller died and its connection closed) or when no line came for `stale_after` seconds
(STALE_AFTER by default): a controller whose machine died or whose link was cut sends no close,
and sshd would otherwise keep its session, and the lock, until TCP gives up hours later.
Nothing is left to clean. The lock file keeps the holder's line: what holds it, from which
controller, since when (UTC), and the host pid whose `kill` breaks the lock at once.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
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
# Seconds between two heartbeat lines, and without one after which the host lets the lock go. The margin covers
# a few lost or late beats (a busy controller, a retransmission) without a release.
HEARTBEAT = 5.0
STALE_AFTER = 20.0
# Each beat is one tiny packet; one that cannot go out within this time ends the beating.
SEND_LIMIT = 5.0
_HELD = 75
# What the controller keeps of the lock script's output, and shows of the holder's line.
MAX_OUTPUT = 65536
HOLDER_CHARS = 300

_TAKE = r"""
set -u
lock=$1 wait=$2 who=$3 nonce=$4 stale=$5
if [ "$(id -u)" != 0 ]; then
  echo "it needs root: log in as root, or set use_sudo for a user with sudo rights" >&2; exit 91
fi
# dash's read has no time limit: bash's has, else coreutils' timeout bounds each read.
if command -v bash >/dev/null 2>&1; then keep=bash
elif command -v timeout >/dev/null 2>&1; then keep=timeout
else echo "it needs bash or timeout (coreutils) to notice a controller that is gone" >&2; exit 90
fi
# Made only when missing, as the facts script does: one process fewer on every host at every apply.
[ -d "${lock%/*}" ] || mkdir -p -m 0700 -- "${lock%/*}" || exit 90
[ -L "$lock" ] && { echo "$lock is a symlink" >&2; exit 90; }
exec 9>>"$lock" || exit 90
if ! flock -w "$wait" 9; then cat -- "$lock"; exit 75; fi
printf '%s, host pid %s, freed %s s after its last heartbeat\n' "$who" "$$" "$stale" > "$lock"
echo "LOCKED $nonce"
# Held while heartbeat lines come. exec keeps the pid of the holder's line, so `kill` of it frees the lock.
if [ "$keep" = bash ]; then
  unset BASH_ENV ENV
  exec bash --norc --noprofile -c 'while IFS= read -r -t "$1" line; do :; done' bash "$stale"
fi
# Here the reader is a child: without fd 9, so that the lock goes with this shell.
while timeout "$stale" sh -c 'IFS= read -r line' 9>&-; do :; done
"""


class HostLockError(RemoteError):
    """Another apply held the host's lock for longer than we wait."""


class HostLock:
    """Context manager: the host's lock, held for the `with` block.

    `stale_after` (seconds, STALE_AFTER by default): how long the host keeps the lock without a heartbeat.
    """

    def __init__(self, session: Session, what: str, wait: float = DEFAULT_WAIT, stale_after: float = STALE_AFTER):
        if not (math.isfinite(stale_after) and 1 <= stale_after <= 86400):
            raise ValueError(f"stale_after is 1 to 86400 seconds, not {stale_after!r}")
        self.s = session
        self.what = what
        self.wait = wait
        self.stale_after = stale_after
        self._chan: paramiko.Channel | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def __enter__(self) -> HostLock:
        label = self.s.target.label
        since = f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"
        who = f"{self.what} from {socket.gethostname()} (pid {os.getpid()}) since {since}"
        # A login may print (a profile's echo, a motd script): the line with this nonce, and only it, says "ours".
        nonce = secrets.token_hex(8)
        argv = ["sh", "-c", _TAKE, "sh", LOCK_FILE, f"{self.wait:g}", who, nonce, f"{self.stale_after:g}"]
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
            # Gone before the lock is handed on: no thread of this lock outlives the call that made it.
            watchdog.join(1.0)
        if locked:
            self._hold(chan)
            return self
        status = chan.recv_exit_status() if chan.status_event.wait(5) else -1
        err = chan.recv_stderr(4096).decode(errors="replace") if chan.recv_stderr_ready() else ""
        # The last line is the script's own; a login may print notices of its own before it.
        err = ([ln for ln in err.splitlines() if ln.strip()] or [""])[-1].strip()
        chan.close()
        if status == _HELD:
            raise HostLockError(held_message(label, holder_text(out), self.wait))
        raise RemoteError(f"{label}: could not take the host lock {LOCK_FILE}: {err or f'exit code {status}'}")

    def __exit__(self, *exc: object) -> None:
        chan, self._chan = self._chan, None
        if chan is None:
            return
        self._stop.set()
        # End of input: the holder process exits and the lock goes with it.
        with contextlib.suppress(paramiko.SSHException, OSError, EOFError):
            chan.shutdown_write()
        # Also wakes a beat still waiting to send.
        chan.close()
        if self._beat is not None:
            self._beat.join(SEND_LIMIT + 1)
            self._beat = None

    def _hold(self, chan: paramiko.Channel) -> None:
        self._chan = chan
        self._stop.clear()
        # Several beats within the stale time, so that one late or lost does not free the lock.
        every = min(HEARTBEAT, self.stale_after / 4)
        self._beat = threading.Thread(
            target=_beat, args=(chan, self._stop, every), name=f"host lock heartbeat {self.s.target.label}", daemon=True
        )
        self._beat.start()


def _beat(chan: paramiko.Channel, stop: threading.Event, every: float) -> None:
    """Send a line every `every` seconds until `stop`. A send that fails or cannot go out within SEND_LIMIT ends
    the beating, and nothing else: the apply goes on, and the host frees the lock once the beats stop."""
    chan.settimeout(SEND_LIMIT)
    while not stop.wait(every):
        try:
            if chan.send(b"\n") == 0:
                return  # the channel is closing
        except Exception:  # whatever it is, it must not reach the apply
            return


def held_message(label: str, holder: str, wait: float) -> str:
    """What a waiter is told: who holds the lock, and how a stale one goes (by itself, or at once by `kill`)."""
    pid_at = re.search(r"host pid (\d+)(?:, freed (\d+(?:\.\d+)?) s after its last heartbeat)?$", holder)
    kill = f"`kill {pid_at[1]}`" if pid_at else f"`kill` of the host pid that {LOCK_FILE} names"
    if pid_at and pid_at[2]:
        itself = f"the lock frees itself {pid_at[2]} s after that controller's last heartbeat"
    else:
        itself = "this holder sends no heartbeat (an older version), so it holds the lock until its SSH session ends"
    return (
        f"{label}: another apply holds the host lock {LOCK_FILE}: {holder or 'a holder that left no name'}. "
        f"Waited {wait:g} s for it; nothing was changed. Run this apply again when that one is over. "
        f"If its controller died or lost its network, {itself}; to break the lock at once, make sure that apply "
        f"is no longer running, then run {kill} as root on the host."
    )


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
