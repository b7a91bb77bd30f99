"""What DovecotAuthService does on a host, as remote operations over one SSH session."""

from __future__ import annotations

import time

from paramiko import SSHException

from components.core.dovecot_conf import CONFIG_FILE, Listener, mechanisms
from components.core.host_output import (
    DovecotFacts,
    NotDovecotAuth,
    auth_handshake_mechanisms,
    dovecot_error_lines,
    parse_dovecot_facts,
)
from components.remote.ssh import RemoteError, Session

DOVECOT_CONF = "/etc/dovecot/dovecot.conf"

# The staged conf.d is a copy inside /etc/dovecot (private keys are never copied anywhere), bound
# over the real conf.d in a mount namespace of its own for `doveconf`: everything else it reads,
# includes and key files alike, is the host's own. Our file is written fresh in the copy, so a
# symlink in its place is never written through; `doveconf` names the real paths.
_STAGE_AND_CHECK = r"""
set -u
stage=$(mktemp -d /etc/dovecot/.secure-postfix-stage.XXXXXX) || exit 90
trap 'rm -rf -- "$stage"' EXIT
trap 'exit 129' HUP INT TERM PIPE
cp -a /etc/dovecot/conf.d/. "$stage/" || exit 91
rm -f -- "$stage/$1"
cat > "$stage/$1"
unshare --mount --propagation private -- sh -c '
  mount --bind -- "$1" /etc/dovecot/conf.d || exit 93
  doveconf -c /etc/dovecot/dovecot.conf -n 2>&1 >/dev/null' sh "$stage"
"""

_FACTS = r"""
dovecot --version 2>/dev/null || echo none
include='^[[:space:]]*!include[[:space:]]+conf\.d/\*\.conf'
if grep -Eq "$include" /etc/dovecot/dovecot.conf; then echo included; else echo missing; fi
doveconf -h log_path 2>/dev/null || echo
if doveadm service status auth >/dev/null 2>&1 || pgrep -x dovecot >/dev/null; then echo running; else echo stopped; fi
if [ -e "$1" ]; then sum=$(sha256sum < "$1"); echo "${sum%% *}"; else echo -; fi
if [ -e "$1" ]; then echo '--- managed file'; cat -- "$1"; fi
"""


class DovecotError(RemoteError):
    """Dovecot refused a configuration or its auth service did not answer."""


class DovecotHost:
    def __init__(self, session: Session):
        self.s = session
        self.label = session.target.label

    def facts(self) -> DovecotFacts:
        """Version, include, log path, daemon state and our file, in one round trip."""
        return parse_dovecot_facts(
            self.s.run(["bash", "-c", _FACTS, "bash", CONFIG_FILE], what="reading Dovecot's facts").out
        )

    def check_staged(self, text: str) -> None:
        result = self.s.run(
            ["bash", "-c", _STAGE_AND_CHECK, "bash", CONFIG_FILE.rsplit("/", 1)[1]],
            stdin=text.encode(),
            check=False,
            what="the staged check of the Dovecot configuration",
        )
        if result.rc != 0:
            detail = result.out.strip() or f"exit code {result.rc}"
            raise DovecotError(f"{self.label}: doveconf rejects the new configuration: {detail}")

    def write(self, text: str | None, expect_sha256: str | None = None) -> None:
        """Put our file in place (atomically), or remove it when `text` is None.

        With `expect_sha256`, only if the live file still has that digest ("-": still absent).
        """
        if text is None:
            self.s.run(["rm", "-f", "--", CONFIG_FILE])
        else:
            self.s.write_file_atomic(
                CONFIG_FILE, text.encode(), mode="0644", owner="root:root", expect_sha256=expect_sha256
            )

    def log_errors(self, log_file: str | None, offset: int | None) -> list[str]:
        return dovecot_error_lines(self.s.read_appended(log_file, offset))

    def reload(self) -> None:
        # Exit code 0 even with a broken config (the master keeps the old one), hence the checks after it.
        result = self.s.run(["doveadm", "reload"], check=False)
        if result.rc != 0:
            raise DovecotError(f"{self.label}: doveadm reload failed: {(result.err or result.out).strip()}")

    # -- checks after reload ------------------------------------------------
    def verify(self, listener: Listener, mechanism_text: str, timeout: float = 15.0) -> None:
        if listener.kind == "unix":
            self._verify_unix(listener, timeout)
        else:
            self._verify_inet(listener, mechanism_text, timeout)

    def _verify_unix(self, listener: Listener, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        want = f"{int(listener.mode, 8):o} {listener.user} {listener.group}"
        while True:
            seen = self.s.sh('stat -c "%a %U %G" -- "$1" 2>/dev/null || true', listener.path).out.strip()
            if seen == want:
                break
            if time.monotonic() > deadline:
                raise DovecotError(
                    f"{self.label}: the auth socket {listener.path} is {seen or 'missing'}, expected mode/owner {want}"
                )
            time.sleep(0.2)
        # An unknown user gets "auth failed" only if the auth service behind the socket answers.
        probe = self.s.run(
            ["doveadm", "auth", "test", "-a", listener.path, "secure-postfix-probe", "not-a-password"],
            check=False,
        )
        if "auth failed" not in probe.out and "auth succeeded" not in probe.out:
            raise DovecotError(
                f"{self.label}: the auth service behind {listener.path} does not answer: "
                f"{(probe.err or probe.out).strip()}"
            )

    def _verify_inet(self, listener: Listener, mechanism_text: str, timeout: float) -> None:
        """Read the auth server's handshake; it lists the mechanisms it really offers."""
        deadline = time.monotonic() + timeout
        wanted = mechanisms(mechanism_text)
        while True:
            try:
                offered = auth_handshake(self.s, listener.address, listener.port)
            except DovecotError:
                raise
            except RemoteError:  # not listening yet: the auth service starts after the reload
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
                continue
            missing = [m for m in wanted if m.upper() not in offered]
            if not missing:
                return
            # Right after `doveadm reload` the old auth process may still answer with the old list.
            if time.monotonic() > deadline:
                raise DovecotError(
                    f"{self.label}: the auth listener {listener.address}:{listener.port} offers "
                    f"{', '.join(sorted(offered)) or 'no mechanism'}; missing {', '.join(missing)}"
                )
            time.sleep(0.3)


def auth_handshake(session: Session, address: str, port: int, timeout: float = 5.0) -> set[str]:
    """Speak the first turn of Dovecot's auth protocol from the host; returns the mechanisms offered.

    The whole handshake must be over within `timeout`, even from a server that trickles bytes.
    Raises DovecotError when something else (or nothing in time) answers there, RemoteError when
    nothing listens.
    """
    label = session.target.label
    deadline = time.monotonic() + timeout
    chan = session.open_tcp(address, port, timeout=timeout)
    try:
        chan.sendall(b"VERSION\t1\t2\nCPID\t1\n")
        data = b""
        while (offered := auth_handshake_mechanisms(data)) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            chan.settimeout(left)
            chunk = chan.recv(4096)
            if not chunk:
                raise DovecotError(f"{label}: {address}:{port} closed the connection during the auth handshake")
            data += chunk
    except NotDovecotAuth as other:
        raise DovecotError(
            f"{label}: {address}:{port} is not Dovecot's auth service (it answered {str(other)!r})"
        ) from None
    except TimeoutError:
        raise DovecotError(f"{label}: no complete auth handshake from {address}:{port} within {timeout:g} s") from None
    except (OSError, SSHException, EOFError) as exc:
        raise DovecotError(f"{label}: the auth handshake with {address}:{port} failed: {exc}") from None
    finally:
        chan.close()
    return offered
