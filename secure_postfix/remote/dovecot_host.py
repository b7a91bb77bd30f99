"""What DovecotAuthService does on a host, as remote operations over one SSH session."""

from __future__ import annotations

import time

from secure_postfix.core import host_output
from secure_postfix.core.dovecot_conf import CONFIG_FILE, Listener, mechanisms
from secure_postfix.core.host_output import DovecotFacts, dovecot_error_lines, parse_dovecot_facts
from secure_postfix.remote.auth_client import DovecotError, auth_handshake
from secure_postfix.remote.ssh import RemoteError, Result, Session

DOVECOT_CONF = "/etc/dovecot/dovecot.conf"
# What the master logs when `doveadm reload` reached it (Dovecot 2.3).
_RELOAD_MARK = "SIGHUP received - reloading configuration"

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
# "absent": the configuration without our file (what a destroy leaves).
if [ "$2" = present ]; then cat > "$stage/$1"; fi
unshare --mount --propagation private -- sh -c '
  mount --bind -- "$1" /etc/dovecot/conf.d || exit 93
  doveconf -c /etc/dovecot/dovecot.conf -n 2>&1 >/dev/null' sh "$stage"
"""


class DovecotHost:
    def __init__(self, session: Session):
        self.s = session
        self.label = session.target.label

    def facts(self) -> DovecotFacts:
        """Version, include, log path, daemon state and our file, in one round trip."""
        return parse_dovecot_facts(
            self.s.run(
                ["bash", "-c", host_output.DOVECOT_FACTS_SCRIPT, "bash", CONFIG_FILE], what="reading Dovecot's facts"
            ).out
        )

    def check_staged(self, text: str | None) -> None:
        """`doveconf -n` with `text` as our file (None: without it)."""
        presence = "absent" if text is None else "present"
        result = self.s.run(
            ["bash", "-c", _STAGE_AND_CHECK, "bash", CONFIG_FILE.rsplit("/", 1)[1], presence],
            stdin=(text or "").encode(),
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

    def log_size(self, log_file: str | None) -> int | None:
        return self.s.file_size(log_file)

    def log_errors(self, log_file: str | None, offset: int | None) -> list[str]:
        return dovecot_error_lines(self.s.read_appended(log_file, offset))

    def reload(self) -> None:
        # Exit code 0 even with a broken config (the master keeps the old one), hence the checks after it.
        result = self.s.run(["doveadm", "reload"], check=False)
        if result.rc != 0:
            raise DovecotError(f"{self.label}: doveadm reload failed: {(result.err or result.out).strip()}")

    def wait_reloaded(self, log_file: str | None, offset: int | None, timeout: float = 10.0) -> bool:
        """Wait until the master has taken the reload and the auth service answers; False at the deadline.

        The master logs the SIGHUP before it re-reads its configuration; the auth service answering
        after that line is the signal that Dovecot serves again, on whichever file is in place.
        """
        deadline = time.monotonic() + timeout
        while True:
            logged = log_file is None or any(_RELOAD_MARK in ln for ln in self.s.read_appended(log_file, offset))
            if logged and _answered(self._auth_test()):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)

    def _auth_test(self, socket_path: str | None = None) -> Result:
        """`doveadm auth test` of a user that does not exist, at `socket_path` (Dovecot's default socket if None)."""
        where = ["-a", socket_path] if socket_path else []
        return self.s.run(["doveadm", "auth", "test", *where, "secure-postfix-probe", "not-a-password"], check=False)

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
        probe = self._auth_test(listener.path)
        if not _answered(probe):
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


def _answered(probe: Result) -> bool:
    # An unknown user gets "auth failed" only if the auth service behind the socket answers.
    return "auth failed" in probe.out or "auth succeeded" in probe.out
