"""What PostfixConfig does on a host, as remote operations over one SSH session."""

from __future__ import annotations

import hashlib
import posixpath
import time
from collections.abc import Callable

from paramiko import SSHException

from secure_postfix.core import check_scope, host_output, maincf, postfix_output, smtp_endpoint
from secure_postfix.core import sasl_path as sasl_paths
from secure_postfix.core.certificates import HostMaterial, parse_host_material
from secure_postfix.core.host_output import PostfixFacts
from secure_postfix.core.renewal_hook import ASSEMBLE
from secure_postfix.core.smtp import Reply
from secure_postfix.remote import smtp_client
from secure_postfix.remote.auth_client import DovecotError, auth_handshake
from secure_postfix.remote.ssh import ATOMIC_WRITE, ChangedMeanwhileError, RemoteError, Session

MAIN_CF = "/etc/postfix/main.cf"
BACKUP_SUFFIX = ".secure-postfix-prev"

# A backup name someone else made (a symlink, say) is removed first, never written through. `--preserve=all`
# also keeps an SELinux context (a rollback moves the backup back, so the file gets its own context back) and,
# unlike `--preserve=context`, says nothing on a host without SELinux.
BACKUP_SCRIPT = (
    'for f in "$@"; do b="$f.secure-postfix-prev"; rm -f -- "$b"; '
    'if [ -e "$f" ] || [ -L "$f" ]; then cp -P --preserve=all -- "$f" "$b" || exit; fi; done'
)
# Before the first byte of a main.cf change lands, in one round trip: main.cf is still the file the facts read
# (else exit 68 and nothing is written), each file the change replaces is backed up beside itself, and the ledger
# with the change's pending record (stdin) is written atomically. $1 main.cf, $2 its digest as read ("" skips the
# compare), $3 the ledger, $4 its size, $5 its digest, $6 the atomic write (ssh.ATOMIC_WRITE); then the files.
BEGIN_CHANGE_SCRIPT = (
    "main=$1 expect=$2 ledger=$3 size=$4 digest=$5 write=$6; shift 6\n"
    'if [ -n "$expect" ]; then\n'
    '  if [ -e "$main" ]; then cur=$(sha256sum < "$main") || exit; cur=${cur%% *}; else cur=-; fi\n'
    '  [ "$cur" = "$expect" ] || { echo "$main changed since it was read" >&2; exit 68; }\n'
    "fi\n" + BACKUP_SCRIPT + ' || exit\nexec sh -c "$write" sh "$ledger" 0600 root:root 0 "$size" "$digest" ""\n'
)
# When the change is over, in one round trip: the ledger without its pending record is written ("-" for its size:
# removed, nothing left in it), then the change's backups go. $1 ledger, $2 size, $3 digest, $4 the atomic write.
END_CHANGE_SCRIPT = (
    "ledger=$1 size=$2 digest=$3 write=$4; shift 4\n"
    'if [ "$size" = - ]; then rm -f -- "$ledger" || exit; '
    'else sh -c "$write" sh "$ledger" 0600 root:root 0 "$size" "$digest" "" || exit; fi\n'
    # One rm for all of them, as drop_backups.
    'n=$#; for f in "$@"; do set -- "$@" "$f.secure-postfix-prev"; done; shift "$n"\n'
    '[ "$#" -eq 0 ] || rm -f -- "$@"\n'
)
MAIN_CF_CHANGED = 68
# A folder this project creates (/etc/postfix/tls) gets the SELinux policy's context for its path.
ENSURE_DIRECTORY_SCRIPT = (
    'if [ -L "$1" ]; then echo symlink; elif [ -d "$1" ]; then echo existed; '
    'else mkdir -m 0755 -- "$1" || exit; '
    'if command -v selinuxenabled >/dev/null 2>&1 && selinuxenabled; then restorecon -- "$1" || exit; fi; '
    "echo created; fi"
)
# Where systemd runs Postfix (RHEL, Debian with systemd), a master started from an SSH session would run outside
# postfix.service: restart it through systemd. Elsewhere (no systemd as init: `systemctl show` fails) Postfix's own.
RESTART_SCRIPT = (
    "if command -v systemctl >/dev/null 2>&1 && "
    '[ "$(systemctl show -p LoadState --value postfix.service 2>/dev/null)" = loaded ]; '
    "then systemctl restart postfix.service; "
    "else postfix stop >/dev/null 2>&1; postfix start </dev/null >/dev/null 2>&1; fi"
)

# `postfix check` runs postfix-script, which also reads the main.cf of the default config directory
# (`postconf -c $def_config_directory -h multi_instance_directories`), whatever -c says: a copy
# checked with `postfix -c STAGE` is judged together with the live file. So each check runs in a
# mount namespace of its own in which the file to check (main.cf or master.cf) is bound over the
# live one; the live file is never read for the staged run, the rest of the config directory is the
# real one, and every message names the real path. `postfix` prints its own messages only to a
# terminal, hence `script`. The config directory and the file name go in as data ($1, $2), never as
# program text. For the staged file, `postconf -M` also prints master.cf's entries as Postfix reads
# them, so the caller can see that each entry it wrote is the entry the daemons will run. $5 names the part of
# `postfix check` that runs (core/check_scope.py): `check`, or `check-fatal` for a change check-warn cannot see.
_STAGE_AND_CHECK = r"""
set -u
cfg=$1 name=$2 size=$3 part=${5:-check}
case $name in main.cf|master.cf) ;; *) echo "no such file to check: $name" >&2; exit 94;; esac
case $part in check|check-fatal) ;; *) echo "no such part of postfix check: $part" >&2; exit 94;; esac
stage=$(mktemp -- "$cfg/.$name.secure-postfix-stage.XXXXXX") || exit 90
trap 'rm -f -- "$stage"' EXIT
# A session cut or killed hangs up the script: it still removes its stage on the way out.
trap 'exit 129' HUP INT TERM PIPE
cat > "$stage"
[ "$(stat -c %s -- "$stage")" = "$size" ] || { echo "the staged $name arrived incomplete" >&2; exit 92; }
# Postfix waits until a just-written main.cf is about two seconds old; this complete copy need not.
touch -d "@$(( $(date +%s) - 10 ))" -- "$stage"
in_view() {
  MAIL_CONFIG=$cfg NAME=$name SHELL=/bin/sh unshare --mount --propagation private -- sh -c '
    if [ -n "$1" ]; then mount --bind -- "$1" "$MAIL_CONFIG/$NAME" || exit 93; fi
    shift; "$@"' sh "$@"
}
check() {
  PART=$part in_view "$1" sh -c '
    postconf -c "$MAIL_CONFIG" -n 2>&1 >/dev/null; rc=$?
    postconf -c "$MAIL_CONFIG" -M 2>&1 >/dev/null; mrc=$?
    script -qec "exec postfix -c \"\$MAIL_CONFIG\" \"\$PART\"" /dev/null </dev/null 2>&1; crc=$?
    [ $rc -eq 0 ] && [ $mrc -eq 0 ] && [ $crc -eq 0 ]'
}
staged=$(check "$stage"); rc=$?
printf -- '--- staged\n%s\n--- rc %s\n' "$staged" "$rc"
if [ "$name" = master.cf ]; then
  echo '--- entries'; in_view "$stage" sh -c 'postconf -c "$MAIL_CONFIG" -M 2>/dev/null'; echo '--- end'
fi
echo '--- live'
# The live file's own messages matter only to tell the change's warnings from the host's.
case $staged in *warning:*) check "" ;; esac; echo "--- rc $?"
# The mail log's size now, for the reload's verdict: what the change causes is appended after it.
if [ -n "${4:-}" ]; then echo "--- log $(stat -c %s -- "$4" 2>/dev/null || echo 0)"; fi
"""


ENDPOINT_ATTEMPTS = 3

# Only the certificate blocks of a file leave the host: a key in the same file (the pair file) never does.
_CERT_BLOCKS = r"""[ ! -r "$1" ] || sed -n '/^-----BEGIN CERTIFICATE-----/,/^-----END CERTIFICATE-----/p' -- "$1"
"""

# A certificate and key that live on the host: whether they belong together (openssl compares the public keys
# there), the digest of the pair built from them, and the certificate's blocks. The key stays on the host.
_HOST_MATERIAL = (
    ASSEMBLE
    + r"""
set -u
cert=$1 key=$2
if [ ! -r "$cert" ]; then echo missing-cert; exit 0; fi
if [ ! -r "$key" ]; then echo missing-key; exit 0; fi
want=$(openssl x509 -in "$cert" -noout -pubkey 2>/dev/null) || { echo bad-cert; exit 0; }
have=$(openssl pkey -in "$key" -pubout 2>/dev/null) || { echo bad-key; exit 0; }
if [ "$want" = "$have" ]; then echo match; else echo mismatch; fi
assemble "$key" "$cert" | sha256sum | cut -d' ' -f1
sed -n '/^-----BEGIN CERTIFICATE-----/,/^-----END CERTIFICATE-----/p' -- "$cert"
"""
)

# The pair file built on the host from its own certificate and key, mode 0600 before its first byte, put in place
# by one rename, and only if it is the pair that was checked (an ACME client may renew in between).
_ASSEMBLE_PAIR = (
    ASSEMBLE
    + r"""
set -u
pair=$1 key=$2 cert=$3 want=$4
[ -L "$pair" ] && { echo "$pair is a symlink" >&2; exit 93; }
umask 077
tmp=$(mktemp -- "$pair.secure-postfix-new.XXXXXX") || exit 90
trap 'rm -f -- "$tmp"' EXIT
trap 'exit 129' HUP INT TERM PIPE
assemble "$key" "$cert" > "$tmp" || exit 91
got=$(sha256sum < "$tmp" | cut -d' ' -f1)
[ "$got" = "$want" ] || { echo "$cert or $key changed on the host since they were checked" >&2; exit 92; }
chown root:root -- "$tmp" && mv -f -- "$tmp" "$pair"
"""
)


class PostfixError(RemoteError):
    """Postfix refused a configuration or stopped answering; the message has its words."""


class PostfixHost:
    def __init__(self, session: Session):
        self.s = session
        self.label = session.target.label
        # Where Postfix listens, as the last facts read say (loopback until then).
        self.listen_address = smtp_endpoint.LOOPBACK_V4
        self.smtp = smtp_endpoint.LOOPBACK_SMTP

    # -- reading ----------------------------------------------------------
    def facts(self) -> PostfixFacts:
        """Everything a plan needs, in one round trip."""
        return self._facts()

    def facts_unless_busy(self, lock_file: str, *, plans: bool = True) -> PostfixFacts | None:
        """The facts read under a shared lock of `lock_file`, or None when another operation holds the host's lock
        (or the shared lock cannot be taken here). With `plans` False, what a refresh needs and no more: no digest,
        listening services or parameter names (`parameters` is None)."""
        try:
            return self._facts(lock_file, plans)
        except host_output.HostBusy:
            return None

    def _facts(self, lock_file: str | None = None, plans: bool = True) -> PostfixFacts:
        args = [lock_file] if lock_file else []
        if not plans:
            args = [lock_file or "", "values"]
        argv = ["sh", "-c", host_output.POSTFIX_FACTS_SCRIPT, "sh", *args]
        out = maincf.decode(self.s.run(argv, what="reading Postfix's facts (postconf, main.cf)").stdout)
        try:
            facts = host_output.parse_postfix_facts(out)
        except host_output.NoPostfix:
            raise PostfixError(f"{self.label}: postconf is not installed; is Postfix installed?") from None
        except host_output.NoMainCf as missing:
            raise PostfixError(f"{self.label}: {missing}/main.cf does not exist; is Postfix installed?") from None
        # Every probe from now on asks Postfix where it listens.
        self.listen_address, self.smtp = facts.listen_address, facts.smtp
        return facts

    def read_main_cf(self, config_directory: str = "/etc/postfix") -> str:
        text = self.s.read_file(posixpath.join(config_directory, "main.cf"))
        if text is None:
            raise PostfixError(f"{self.label}: {config_directory}/main.cf does not exist; is Postfix installed?")
        return maincf.decode(text)

    def read_master_cf(self, config_directory: str) -> str | None:
        """master.cf as text (bytes that are not UTF-8 kept as surrogates); None when it is absent."""
        data = self.s.read_file(posixpath.join(config_directory, "master.cf"))
        return None if data is None else data.decode("utf-8", errors="surrogateescape")

    def master_cf_as_read(self, config_directory: str) -> str:
        """master.cf's entries as Postfix itself reads them (`postconf -M`): one line each, comments gone,
        continuation lines joined. What the daemons run, whatever the file's layout."""
        result = self.s.run(
            ["postconf", "-c", config_directory, "-M"], check=False, what="reading master.cf (postconf -M)"
        )
        if result.rc != 0:
            detail = (result.err or result.out).strip() or f"exit code {result.rc}"
            raise PostfixError(f"{self.label}: postconf -M cannot read {config_directory}/master.cf: {detail}")
        return maincf.decode(result.stdout)

    def sasl_endpoint_problem(self, sasl_path: str, queue_directory: str) -> str | None:
        """Why Postfix could not reach Dovecot's auth service at `sasl_path`, or None when it can.

        Checked before the change: with an unreachable auth service every new smtpd dies after
        STARTTLS and the master throttles the whole SMTP service.
        """
        inet = sasl_paths.parse_inet(sasl_path)
        if inet is not None:
            address, port = inet
            # A listener Dovecot has just been reloaded with can refuse for a moment: a few tries, a second apart.
            for attempt in range(1, ENDPOINT_ATTEMPTS + 1):
                try:
                    auth_handshake(self.s, address, port)
                    return None
                except DovecotError as exc:
                    return str(exc).removeprefix(f"{self.label}: ")
                except RemoteError as exc:
                    if attempt == ENDPOINT_ATTEMPTS:
                        return f"nothing answers at {address}:{port} from this host ({exc})"
                    time.sleep(1.0)
        socket_path = posixpath.join(queue_directory, sasl_path)
        if self.s.run(["test", "-S", socket_path], check=False).rc != 0:
            return f"there is no socket at {socket_path}"
        return None

    # -- validating, swapping, reloading ------------------------------------
    def check_staged(
        self,
        text: str,
        config_directory: str,
        restored: tuple[str, ...] = (),
        log_file: str | None = None,
        live: str | None = None,
    ) -> int | None:
        """`postconf -n`, `postconf -M` and `postfix check` on the staged main.cf alone; a warning it adds
        counts as an error. Gives back `log_file`'s size after the check (None without one).

        Duplicates of `restored` names are the original file's own, put back on purpose. Given the `live` text the
        change starts from, a change that check-warn cannot see is judged without it (core/check_scope.py).
        """
        part = check_scope.WHOLE if live is None else check_scope.check_command(live, text)
        report = self.staged_check_report(text, config_directory, log_file=log_file, part=part)
        problem = postfix_output.rejection(report, restored)
        if problem:
            raise PostfixError(f"{self.label}: Postfix rejects the new main.cf: {problem}")
        return report.log_size

    def check_staged_table(self, text: str, label: str) -> None:
        """A texthash: lookup table as Postfix reads it, from a staged copy: `postmap -s` lists what it holds, and
        any warning (a line it cannot read) refuses it before anything is changed."""
        script = (
            'stage=$(mktemp) || exit 90; trap \'rm -f -- "$stage"\' EXIT; cat > "$stage"; '
            'postmap -s "texthash:$stage" 2>&1 >/dev/null'
        )
        result = self.s.sh(script, stdin=text.encode(), check=False, what=f"the staged check of {label}")
        said = (result.out or "").strip()
        if result.rc != 0 or said:
            detail = said or (result.err or "").strip() or f"exit code {result.rc}"
            raise PostfixError(f"{self.label}: Postfix rejects the new {label}: {detail}")

    def staged_check_report(
        self,
        text: str,
        config_directory: str,
        name: str = "main.cf",
        log_file: str | None = None,
        part: str = check_scope.WHOLE,
    ) -> postfix_output.StagedCheck:
        """What Postfix's checks say of the live config, and of it with `text` as its `name` (main.cf or
        master.cf); for master.cf, also its entries as Postfix reads them. `part`: the whole `postfix check`, or
        its check-fatal part (core/check_scope.py)."""
        data = maincf.encode(text)
        result = self.s.sh(
            _STAGE_AND_CHECK,
            config_directory,
            name,
            str(len(data)),
            log_file or "",
            part,
            stdin=data,
            check=False,
            what=f"the staged check of {name}",
        )
        try:
            return postfix_output.parse_staged_check(result.out)
        except ValueError:
            detail = (result.err or result.out).strip() or f"exit code {result.rc}"
            raise PostfixError(f"{self.label}: the staged check of {name} could not run: {detail}") from None

    def check_staged_master(self, text: str, config_directory: str) -> str:
        """The same checks with a staged master.cf; a warning it adds counts as an error. Gives back the
        staged file's entries as Postfix reads them (`postconf -M`), one line each."""
        report = self.staged_check_report(text, config_directory, "master.cf")
        problem = postfix_output.rejection(report)
        if problem:
            raise PostfixError(f"{self.label}: Postfix rejects the new master.cf: {problem}")
        return "".join(line + "\n" for line in report.entries)

    def swap_in_master(self, text: str, config_directory: str, expect_sha256: str | None = None) -> None:
        path = posixpath.join(config_directory, "master.cf")
        self.s.write_file_atomic(path, maincf.encode(text), age=5, expect_sha256=expect_sha256)

    def probe_implicit_tls(self, address: str, port: int, fingerprint: str, timeout: float = 15.0) -> Reply:
        """A submissions (465) listener: TLS from the first byte with the deployed certificate, then the banner."""
        chan = self.s.open_tcp(address, port, timeout)
        chan.settimeout(1.0)
        try:
            return smtp_client.implicit_tls_banner(chan, timeout, self.label, fingerprint)
        except smtp_client.ProbeError as exc:
            raise PostfixError(str(exc)) from None
        except (OSError, SSHException, EOFError) as exc:
            raise PostfixError(f"{self.label}: the TLS probe of {address}:{port} failed: {exc}") from None
        finally:
            chan.close()

    def swap_in(self, text: str, config_directory: str, expect_sha256: str | None = None) -> None:
        # Postfix re-opens a main.cf younger than about two seconds in 300 ms steps until it is older,
        # in case it is still being written. Ours appears whole (rename), so it is dated 5 s back and
        # `postfix reload` does not stall for 1.6 s.
        path = posixpath.join(config_directory, "main.cf")
        self.s.write_file_atomic(path, maincf.encode(text), age=5, expect_sha256=expect_sha256)

    def log_size(self, log_file: str | None) -> int | None:
        """The mail log's size now: what is appended later is read alone (None without a log file)."""
        return self.s.file_size(log_file)

    def log_since(self, log_file: str | None, offset: int | None) -> list[str]:
        return self.s.read_appended(log_file, offset)

    def log_fatals(self, log_file: str | None, offset: int | None) -> list[str]:
        return host_output.postfix_fatal_lines(self.log_since(log_file, offset))

    def write_file(self, path: str, content: str, mode: str) -> None:
        """A file of ours (a TLS file), root's, put in place atomically and given `mode` before its first byte."""
        self.s.write_file_atomic(path, content.encode(), mode=mode, owner="root:root")

    def certificate_blocks(self, path: str) -> str:
        """The PEM certificate blocks of a file on the host ("" when it is absent); nothing else of it."""
        return self.s.sh(_CERT_BLOCKS, path, what=f"reading the certificates in {path}").out

    def host_material(self, cert_file: str, key_file: str) -> HostMaterial:
        """What `up` needs to know of a certificate and key that live on the host, the key never leaving it."""
        out = self.s.sh(_HOST_MATERIAL, cert_file, key_file, what=f"reading {cert_file} and {key_file}").out
        return parse_host_material(out)

    def assemble_pair(self, pair_file: str, key_file: str, cert_file: str, digest: str) -> None:
        """Build the pair file from the host's own key and certificate, atomically; only the pair checked."""
        result = self.s.sh(
            _ASSEMBLE_PAIR, pair_file, key_file, cert_file, digest, check=False, what=f"building {pair_file}"
        )
        if result.rc != 0:
            detail = (result.err or result.out).strip() or f"exit code {result.rc}"
            raise PostfixError(f"{self.label}: building {pair_file} from {cert_file} and {key_file} failed: {detail}")

    def put_back_backup(self, path: str) -> None:
        """Move `path`'s backup (if any) over it: what an interrupted change left is undone."""
        self.s.sh('[ ! -e "$1$2" ] || mv -f -- "$1$2" "$1"', path, BACKUP_SUFFIX)

    def reload(self) -> None:
        """`postfix reload`, never a raw signal: a HUP with a broken main.cf kills the master."""
        result = self.s.run(["postfix", "reload"], check=False)
        if result.rc != 0:
            raise PostfixError(f"{self.label}: postfix reload failed: {(result.err or result.out).strip()}")

    def restart(self) -> None:
        """Stop and start: the only way to lift the master's throttle after an smtpd crash."""
        self.s.sh(RESTART_SCRIPT, what="restarting Postfix")

    # -- probing ------------------------------------------------------------
    def probe_smtp(
        self,
        address: str | None = None,
        port: int | None = None,
        timeout: float = 15.0,
        while_waiting: Callable[[], None] = lambda: None,
        tls_fingerprint: str | None = None,
    ) -> tuple[Reply, Reply]:
        """Banner and EHLO from the host itself, as a mail client would see them.

        `while_waiting` runs about once a second while no reply has come, so a
        caller can give up early (for instance when the log shows smtpd died).
        With `tls_fingerprint`, the probe also runs STARTTLS and checks that the
        server presents that certificate over TLS 1.2 or newer. Without an address and port, it asks
        port 25's smtpd where the host's Postfix has it listen.
        """
        address = address or self.smtp.address
        port = port or self.smtp.port
        chan = self.s.open_tcp(address, port, timeout)
        chan.settimeout(1.0)
        try:
            return smtp_client.banner_and_ehlo(chan, timeout, self.label, while_waiting, tls_fingerprint)
        except smtp_client.ProbeError as exc:
            raise PostfixError(str(exc)) from None
        except (OSError, SSHException, EOFError) as exc:  # the forwarded stream broke
            raise PostfixError(f"{self.label}: the SMTP probe of {address}:{port} failed: {exc}") from None
        finally:
            chan.close()

    def file_digests(self, paths: list[str]) -> dict[str, str | None]:
        """SHA-256 of each file on the host (None when absent), in one round trip."""
        script = 'for f in "$@"; do if [ -e "$f" ]; then sha256sum -- "$f"; else echo "- $f"; fi; done'
        return host_output.parse_digests(self.s.sh(script, *paths, what="reading digests").out)

    def backup_files(self, paths: list[str]) -> None:
        self.s.sh(BACKUP_SCRIPT, *paths, what="backing up " + ", ".join(paths))

    def begin_change(self, facts: PostfixFacts, backups: list[str], ledger_path: str, ledger_text: str) -> None:
        """Stop before anything is written when main.cf is no longer the file `facts` read; else back up
        `backups` beside themselves and write the ledger (`ledger_text`, the change's pending record in it)."""
        main_cf = posixpath.join(facts.config_directory, "main.cf")
        data = ledger_text.encode("ascii")
        args = [main_cf, facts.main_cf_sha256 or "", ledger_path, str(len(data)), hashlib.sha256(data).hexdigest()]
        what = f"backing up {', '.join(backups)} and recording the change in {ledger_path}"
        result = self.s.sh(BEGIN_CHANGE_SCRIPT, *args, ATOMIC_WRITE, *backups, stdin=data, check=False, what=what)
        if result.rc == MAIN_CF_CHANGED:
            raise ChangedMeanwhileError(
                f"{self.label}: {main_cf} was changed on the host after this operation read it (by hand or by another "
                "tool); it was left as it is and nothing was written. Check the change, then run again."
            )
        self.s.raise_for_write(ledger_path, result)

    def end_change(self, ledger_path: str, ledger_text: str | None, backups: list[str]) -> None:
        """Write the ledger (`ledger_text`; None: remove it, nothing is left in it), then drop `backups`' backups."""
        data = (ledger_text or "").encode("ascii")
        size, digest = ("-", "-") if ledger_text is None else (str(len(data)), hashlib.sha256(data).hexdigest())
        what = f"recording the change's end in {ledger_path}"
        result = self.s.sh(END_CHANGE_SCRIPT, ledger_path, size, digest, ATOMIC_WRITE, *backups, stdin=data,
                           check=False, what=what)  # fmt: skip
        self.s.raise_for_write(ledger_path, result)

    def restore_files(self, paths: list[str]) -> None:
        """Put backups back; files that had none did not exist before and are removed."""
        script = (
            'for f in "$@"; do b="$f.secure-postfix-prev"; '
            'if [ -e "$b" ]; then mv -f -- "$b" "$f"; else rm -f -- "$f"; fi; done'
        )
        self.s.sh(script, *paths)

    def drop_backups(self, paths: list[str]) -> None:
        self.s.run(["rm", "-f", "--", *[f"{p}.secure-postfix-prev" for p in paths]])

    def ensure_directory(self, path: str) -> bool:
        """Create `path` (mode 0755) if missing; True when it was created here. A symlink there is refused."""
        found = self.s.sh(ENSURE_DIRECTORY_SCRIPT, path, what=f"creating {path}").out.strip()
        if found == "symlink":
            raise PostfixError(
                f"{self.label}: {path} is a symlink, which this project did not make; refusing to write through it. "
                "Replace it with a directory owned by root."
            )
        return found == "created"

    def remove_files(self, paths: list[str]) -> None:
        """Remove files, then directories (given with a trailing slash) if they are empty."""
        script = 'for f in "$@"; do case $f in */) rmdir -- "$f" 2>/dev/null || true;; *) rm -f -- "$f";; esac; done'
        if paths:
            self.s.sh(script, *sorted(paths, key=lambda p: p.endswith("/")))
