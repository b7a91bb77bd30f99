"""DovecotAuthService: Dovecot's auth listener for Postfix (the guide's section 8.8.3 step 1).

It owns one file under /etc/dovecot/conf.d. Apply: render -> `doveconf -n` on a
staged copy of /etc/dovecot -> atomic swap -> `doveadm reload` -> check that the
auth service answers on the listener (and the log shows no fatal error), since
`doveadm reload` exits 0 even when the new config is broken. On failure the
previous file comes back and Dovecot keeps serving.

Its output `sasl_path` is what Postfix's smtpd_sasl_path must say.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import posixpath
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi.dynamic as dyn

from secure_postfix import connection as conn
from secure_postfix.args import DovecotAuthServiceArgs
from secure_postfix.core import dovecot_conf as dc
from secure_postfix.core import ledger
from secure_postfix.core.problem import Problem
from secure_postfix.provider import (
    ApplyError,
    Change,
    FileJournal,
    HostProvider,
    load_ledger,
    run_change,
    save_ledger,
)
from secure_postfix.remote.dovecot_host import DovecotError, DovecotFacts, DovecotHost
from secure_postfix.remote.ssh import RemoteError, Session

SETTINGS = (
    "listener",
    "socket_path",
    "socket_mode",
    "socket_user",
    "socket_group",
    "listen_port",
    "bind_address",
    "allow_all_interfaces",
    "auth_mechanisms",
    "postfix_queue_directory",
)
# `managed_file` is what the settings make; as an input its whole text would print in every diff that
# changes one setting. A hand edit still shows, as the one-line `drift` input a refresh writes.
COMPUTED_OUTPUTS = ("original_file", "dovecot_version", "managed_file")
DRIFT = "drift"
LEDGER = posixpath.join(posixpath.dirname(posixpath.dirname(dc.CONFIG_FILE)), ledger.FILE_NAME)
_KEY = ledger.path_key(dc.CONFIG_FILE)


def listener_from(props: Mapping[str, Any]) -> dc.Listener:
    """The listener the settings ask for; what is left out takes dc.Listener's own defaults."""
    given = {
        "kind": props.get("listener"),
        "path": props.get("socket_path"),
        "mode": props.get("socket_mode"),
        "user": props.get("socket_user"),
        "group": props.get("socket_group"),
        "address": props.get("bind_address"),
        "port": props.get("listen_port"),
    }
    listener = dc.Listener(**{k: str(v) for k, v in given.items() if v is not None and v != "" and k != "port"})
    return dataclasses.replace(
        listener,
        address=listener.address or _default_bind(props.get("host")),
        port=listener.port if given["port"] is None else int(given["port"]),
    )


def _mechanisms(props: Mapping[str, Any]) -> str:
    return str(props.get("auth_mechanisms") or dc.DEFAULT_MECHANISMS)


def _queue_directory(props: Mapping[str, Any]) -> str:
    return str(props.get("postfix_queue_directory") or dc.DEFAULT_QUEUE_DIRECTORY)


def _default_bind(host: Any) -> str:
    """The address Postfix reaches the host by, when that is an IP address; never all interfaces."""
    try:
        return str(ipaddress.ip_address(str(host)))
    except ValueError:
        return ""


def _port_problems(props: Mapping[str, Any]) -> list[Problem]:
    """A library caller may pass anything: refuse it here, before listener_from turns it into an int."""
    port = props.get("listen_port")
    if port is None or _whole(port):
        return []
    return [Problem("listen_port", f"must be a whole number (a TCP port), got {port!r}")]


def _whole(value: Any) -> bool:
    # Numbers reach the provider as floats (protobuf); 12345.0 is the port 12345.
    if isinstance(value, float):
        return value.is_integer()
    text = str(value)
    return not isinstance(value, bool) and isinstance(value, (int, str)) and text.isascii() and text.isdigit()


def check_props(props: Mapping[str, Any]) -> list[Problem]:
    problems = conn.check_connection(props)
    if any(conn.is_unknown(props.get(k)) for k in (*SETTINGS, "host")):
        return problems
    if _port_problems(props):
        return problems + _port_problems(props)
    listener = listener_from(props)
    if listener.kind == "inet" and not listener.address:
        problems.append(
            Problem("bind_address", f"is required: host {props.get('host')!r} is not an IP address to bind to")
        )
    else:
        problems += dc.listener_problems(listener, props.get("allow_all_interfaces"))
    problems += dc.mechanism_problems(_mechanisms(props))
    problems += dc.sasl_path_problems(listener, _queue_directory(props))
    return problems


def checked_inputs(props: Mapping[str, Any]) -> dict[str, Any]:
    """Stored inputs: the connection, the settings, and the sasl_path they make."""
    inputs = {k: props.get(k) for k in (*conn.CONNECTION_FIELDS, *conn.OPTION_FIELDS, *SETTINGS)}
    if not any(conn.is_unknown(props.get(k)) for k in (*SETTINGS, "host")) and not _port_problems(props):
        inputs["sasl_path"] = dc.sasl_path(listener_from(props), _queue_directory(props))
    return {k: v for k, v in inputs.items() if v is not None}


class DovecotAuthServiceProvider(HostProvider):
    resource = "DovecotAuthService"
    id_prefix = "dovecot-auth"
    named = frozenset(SETTINGS)
    computed = COMPUTED_OUTPUTS

    # A refresh may have to undo a change cut off half way: it holds the host's lock.
    refresh_locks = True

    problems = staticmethod(check_props)
    inputs = staticmethod(checked_inputs)

    def refresh(self, session: Session, id_: str, props: dict[str, Any]) -> dict[str, Any]:
        host = DovecotHost(session)
        facts = resolved(session, host, host.facts(), load_ledger(session, LEDGER))
        refreshed = {k: v for k, v in props.items() if k != DRIFT}
        refreshed["managed_file"] = facts.current or ""
        # The version as the host reports it now: the next preview judges the settings against it.
        if installed_version(facts) is not None:
            refreshed["dovecot_version"] = facts.version_text.split()[0]
        drift = drift_of(facts.current, dc.render(listener_from(props), _mechanisms(props), rendered_for(facts)))
        if drift:
            refreshed[DRIFT] = drift
        return refreshed

    def preview_problems(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
        """The version the last up or refresh read from the host, judged against the new settings."""
        return preview_problems(olds.get("dovecot_version"), news)

    def remove(self, session: Session, id_: str, props: dict[str, Any]) -> None:
        host = DovecotHost(session)
        book = load_ledger(session, LEDGER)
        facts = resolved(session, host, host.facts(), book)
        if _KEY in book.declared_by_others(id_):
            # Another resource (this one's replacement, say) declares the file now: it stays.
            pulumi.log.info(f"{host.label}: {dc.CONFIG_FILE} is still declared by another resource; left as is")
        else:
            first = book.originals.get(_KEY)
            original = first.get("text") if first is not None else props.get("original_file") or None
            if facts.current != original:
                _give_back(session, host, facts, book, original, id_)
        book.release(id_)
        save_ledger(session, LEDGER, book)

    def apply(self, session: Session, id_: str, props: dict[str, Any], olds: Mapping[str, Any] | None) -> dict:
        listener, mechanisms = listener_from(props), _mechanisms(props)
        host = DovecotHost(session)
        facts = host.facts()
        book = load_ledger(session, LEDGER)
        text = dc.render(listener, mechanisms, _check_on_host(host.label, facts, mechanisms))
        facts = resolved(session, host, facts, book)
        original = facts.current if olds is None else olds.get("original_file") or None
        # The host's record of the file before any resource of ours wrote it wins over our own.
        recorded = book.originals.get(_KEY)
        if recorded is not None:
            original = recorded.get("text")
        changed = facts.current != text
        if changed:
            pulumi.log.info(f"{host.label}: writing {dc.CONFIG_FILE} ({listener.kind} listener, {mechanisms})")
            journal = FileJournal(session, LEDGER, book, host.label, dc.CONFIG_FILE)
            run_change(DovecotFileChange(host, facts, text, listener, mechanisms, journal, id_))
        book.claim(id_, [_KEY], {_KEY: {"text": original}})
        # One write records the result and ends the change's record.
        book.pending = None
        try:
            save_ledger(session, LEDGER, book)
        except RemoteError as exc:
            if not changed:
                raise
            raise ApplyError(
                f"{host.label}: {dc.CONFIG_FILE} was changed and Dovecot reloaded, but recording it on the host "
                f"({LEDGER}) failed: {str(exc).removeprefix(host.label + ': ')}. The next operation on this host "
                "reconciles it (undoes it, and `up` applies it again)."
            ) from None
        return {
            **props,
            "managed_file": text,
            "original_file": original or "",
            "dovecot_version": facts.version_text.split()[0],
        }


def _give_back(
    session: Session, host: DovecotHost, facts: DovecotFacts, book: ledger.Ledger, original: str | None, owner: str
) -> None:
    """The file as it was before the first apply (None: no file), as any change goes: checked, recorded, swapped,
    reloaded, the auth service answering, undone on failure. A stopped Dovecot only gets the file."""
    if not facts.running:
        host.write(original)
    else:
        journal = FileJournal(session, LEDGER, book, host.label, dc.CONFIG_FILE)
        run_change(DovecotFileChange(host, facts, original, None, "", journal, owner))
        # The caller's one write of the ledger records the release and ends the change's record.
        book.pending = None
    pulumi.log.info(f"{host.label}: {'removed' if original is None else 'restored'} {dc.CONFIG_FILE}")


def drift_of(live: str | None, desired: str) -> str | None:
    """One line for a file that is not what the settings make (the next up writes it again)."""
    if live == desired:
        return None
    if live is None:
        return f"{dc.CONFIG_FILE} is missing on the host"
    digest = hashlib.sha256(live.encode("utf-8", errors="surrogateescape")).hexdigest()[:12]
    return f"{dc.CONFIG_FILE} was changed on the host (sha256 {digest}…)"


def installed_version(facts: DovecotFacts) -> tuple[int, ...] | None:
    """The version `dovecot --version` printed; None when Dovecot is not installed (or printed no version)."""
    try:
        return dc.parse_version(facts.version_text)
    except ValueError:
        return None


def rendered_for(facts: DovecotFacts) -> tuple[int, ...]:
    """The version whose syntax our file takes on this host; 2.3's when the host's cannot be rendered for."""
    version = installed_version(facts)
    return version if version is not None and dc.version_supported(version) else (2, 3)


def preview_problems(version_text: Any, news: Mapping[str, Any]) -> list[str]:
    """What the settings ask that the host's Dovecot (as last read, `version_text`) cannot do; [] when that
    version is not known yet or a setting is still unknown."""
    if not isinstance(version_text, str) or conn.is_unknown(news.get("auth_mechanisms")):
        return []
    try:
        version = dc.parse_version(version_text)
    except ValueError:
        return []
    refusal = dc.version_refusal(version)
    if refusal:
        return [refusal]
    return [str(p) for p in dc.mechanism_problems(_mechanisms(news), version)]


def _check_on_host(label: str, facts: DovecotFacts, mechanisms: str) -> tuple[int, ...]:
    """Refuse a host our file cannot go to, before any change; returns its Dovecot version."""
    if facts.version_text in ("", "none"):
        raise ApplyError(f"{label}: Dovecot is not installed (no `dovecot --version`). Nothing was changed.")
    version = installed_version(facts)
    if version is None:
        raise ApplyError(
            f"{label}: `dovecot --version` printed {facts.version_text[:40]!r}, which is not a version. "
            "Nothing was changed."
        )
    problems = [p for p in [dc.version_refusal(version)] if p] or [
        str(p) for p in dc.mechanism_problems(mechanisms, version)
    ]
    if problems:
        raise ApplyError(f"{label}: " + "; ".join(problems) + ". Nothing was changed.")
    if not facts.conf_d_included:
        raise ApplyError(
            f"{label}: /etc/dovecot/dovecot.conf does not include conf.d/*.conf, so {dc.CONFIG_FILE} would not be "
            "read. Nothing was changed."
        )
    if not facts.running:
        raise ApplyError(f"{label}: Dovecot is not running; start it first. Nothing was changed.")
    return version


class DovecotFileChange(Change):
    """Dovecot's file: `doveconf -n` on a staged conf.d, swap, `doveadm reload`, the listener answering.

    With no text and no listener, the file goes (a destroy), and the auth service answering is the check."""

    daemon = "Dovecot"
    changed = dc.CONFIG_FILE
    refusal = DovecotError

    def __init__(
        self,
        host: DovecotHost,
        facts: DovecotFacts,
        text: str | None,
        listener: dc.Listener | None,
        mechanisms: str,
        journal: FileJournal,
        owner: str,
    ):
        self.host, self.facts, self.text = host, facts, text
        self.listener, self.mechanisms = listener, mechanisms
        self.journal, self.owner = journal, owner
        self.label = host.label
        self.offset: int | None = None

    def check_staged(self) -> None:
        self.host.check_staged(self.text)

    def prepare(self) -> None:
        self.offset = self.host.log_size(self.facts.log_file)
        # From here until the change is over, the next contact with the host undoes it if it is cut off.
        self.journal.begin(self.owner, self.facts.current, self.text)

    def swap(self) -> None:
        self.host.write(self.text, expect_sha256=self.facts.current_sha256)

    def load(self) -> None:
        # Exit code 0 even with a broken file (the master keeps the old one): `verify` is the judge.
        self.host.reload()

    def verify(self) -> None:
        if self.listener is not None:
            self.host.verify(self.listener, self.mechanisms)
        elif not self.host.wait_reloaded(self.facts.log_file, self.offset):
            raise DovecotError(f"{self.label}: Dovecot's auth service does not answer after the reload")
        errors = self.host.log_errors(self.facts.log_file, self.offset)
        if errors:
            raise DovecotError(f"{self.label}: the Dovecot log says: " + " | ".join(errors[-3:]))

    def roll_back(self, swapped: bool) -> str:
        if not swapped:
            self.journal.end()
            return ""
        offset = self.host.log_size(self.facts.log_file)
        self.host.write(self.facts.current)
        self.host.reload()
        answering = self.host.wait_reloaded(self.facts.log_file, offset)
        self.journal.end()
        if answering:
            return "The previous file was put back and Dovecot reloaded"
        return "The previous file was put back and Dovecot reloaded, but its auth service does not answer yet"

    def not_undone(self, reason: str, again: RemoteError) -> Exception:
        return ApplyError(
            f"{self.label}: the change of {self.changed} was cut off ({reason}) and could not be undone now "
            f"({str(again).removeprefix(self.label + ': ')}). {self.journal.ledger_path} records the change, and the "
            "next operation on this host (up, refresh or destroy) undoes it first."
        )


def resolved(session: Session, host: DovecotHost, facts: DovecotFacts, book: ledger.Ledger) -> DovecotFacts:
    """The facts after undoing a change of the file that an earlier operation left half done."""
    journal = FileJournal(session, LEDGER, book, host.label, dc.CONFIG_FILE)

    def reload() -> None:
        offset = host.log_size(facts.log_file)
        host.reload()
        host.wait_reloaded(facts.log_file, offset)

    return host.facts() if journal.resolve(facts.current, host.write, reload, "Dovecot") else facts


class DovecotAuthService(dyn.Resource, module="dovecot", name="DovecotAuthService"):
    """Dovecot's auth listener for Postfix SASL, in a file of its own under conf.d; its `sasl_path` output is what
    a PostfixConfig's `SaslWiring.path` takes, which makes the engine order the two hosts."""

    sasl_path: pulumi.Output[str]
    managed_file: pulumi.Output[str]
    dovecot_version: pulumi.Output[str]

    def __init__(self, resource_name: str, args: DovecotAuthServiceArgs, opts: pulumi.ResourceOptions | None = None):
        outputs = ("managed_file", "sasl_path", "original_file", "dovecot_version")
        props = {**args.props(), **dict.fromkeys(outputs)}
        super().__init__(DovecotAuthServiceProvider(), resource_name, props, opts)
