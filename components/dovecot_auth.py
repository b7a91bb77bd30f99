"""DovecotAuthService: Dovecot's auth listener for Postfix (the guide's section 8.8.3 step 1).

It owns one file under /etc/dovecot/conf.d. Apply: render -> `doveconf -n` on a
staged copy of /etc/dovecot -> atomic swap -> `doveadm reload` -> check that the
auth service answers on the listener (and the log shows no fatal error), since
`doveadm reload` exits 0 even when the new config is broken. On failure the
previous file comes back and Dovecot keeps serving.

Its output `sasl_path` is what Postfix's smtpd_sasl_path must say.
"""

from __future__ import annotations

import ipaddress
import posixpath
import secrets
import time
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi.dynamic as dyn

from components import connection as conn
from components.core import dovecot_conf as dc
from components.core import ledger
from components.core.postfix_rules import Problem
from components.postfix_config import ApplyError, host_lock, load_ledger, save_ledger, ssh_target
from components.remote.dovecot_host import DovecotError, DovecotFacts, DovecotHost
from components.remote.ssh import Session

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
COMPUTED_OUTPUTS = ("original_file", "dovecot_version")
LEDGER = posixpath.join(posixpath.dirname(posixpath.dirname(dc.CONFIG_FILE)), ledger.FILE_NAME)
_KEY = ledger.path_key(dc.CONFIG_FILE)


def listener_from(props: Mapping[str, Any]) -> dc.Listener:
    return dc.Listener(
        kind=str(props.get("listener") or "unix"),
        path=str(props.get("socket_path") or dc.DEFAULT_SOCKET),
        mode=str(props.get("socket_mode") or "0660"),
        user=str(props.get("socket_user") or "postfix"),
        group=str(props.get("socket_group") or "postfix"),
        address=str(props.get("bind_address") or _default_bind(props.get("host"))),
        port=dc.DEFAULT_PORT if props.get("listen_port") is None else int(props["listen_port"]),
    )


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
    problems += dc.mechanism_problems(str(props.get("auth_mechanisms") or dc.DEFAULT_MECHANISMS))
    queue = str(props.get("postfix_queue_directory") or dc.DEFAULT_QUEUE_DIRECTORY)
    problems += dc.sasl_path_problems(listener, queue)
    return problems


def checked_inputs(props: Mapping[str, Any]) -> dict[str, Any]:
    """Stored inputs: the connection, the settings, and the file and sasl_path they make."""
    inputs = {k: props.get(k) for k in (*conn.CONNECTION_FIELDS, *conn.OPTION_FIELDS, *SETTINGS)}
    if not any(conn.is_unknown(props.get(k)) for k in (*SETTINGS, "host")) and not _port_problems(props):
        listener = listener_from(props)
        mechanisms = str(props.get("auth_mechanisms") or dc.DEFAULT_MECHANISMS)
        inputs["managed_file"] = dc.render(listener, mechanisms)
        queue = str(props.get("postfix_queue_directory") or dc.DEFAULT_QUEUE_DIRECTORY)
        inputs["sasl_path"] = dc.sasl_path(listener, queue)
    return {k: v for k, v in inputs.items() if v is not None}


class DovecotAuthServiceProvider(dyn.ResourceProvider):
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dyn.CheckResult:
        where = conn.host_label(news)
        named = {*conn.NAMED_PROPERTIES, *SETTINGS}
        failures = [dyn.CheckFailure(conn.failure_property(p.field, named), f"{where}: {p}") for p in check_props(news)]
        return dyn.CheckResult(checked_inputs(news), failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.DiffResult:
        return dyn.DiffResult(changes=None, replaces=conn.replaced_fields(olds, news))

    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        id_ = f"dovecot-auth:{props['host']}:{secrets.token_hex(4)}"
        outs = self._apply(id_, props, original=None, first=True)
        return dyn.CreateResult(id_=id_, outs=outs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.UpdateResult:
        return dyn.UpdateResult(outs=self._apply(id_, news, original=olds.get("original_file") or None, first=False))

    def read(self, id_: str, props: dict[str, Any]) -> dyn.ReadResult:
        target = ssh_target(props)
        with host_lock(target.label), Session(target) as session:
            current = DovecotHost(session).facts().current
        refreshed = {**props, "managed_file": current or ""}
        inputs = {k: v for k, v in refreshed.items() if k not in COMPUTED_OUTPUTS}
        return dyn.ReadResult(id_=id_, outs=refreshed, inputs=inputs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        target = ssh_target(props)
        with host_lock(target.label), Session(target) as session, session.host_lock("a DovecotAuthService change"):
            host = DovecotHost(session)
            facts = host.facts()
            book = load_ledger(session, LEDGER)
            if _KEY in book.declared_by_others(id_):
                # Another resource (this one's replacement, say) declares the file now: it stays.
                pulumi.log.info(f"{target.label}: {dc.CONFIG_FILE} is still declared by another resource; left as is")
            else:
                first = book.originals.get(_KEY)
                original = first.get("text") if first is not None else props.get("original_file") or None
                if facts.current != original:
                    host.write(original)
                    if facts.running:
                        host.reload()
                    pulumi.log.info(
                        f"{target.label}: removed {dc.CONFIG_FILE}"
                        if original is None
                        else f"{target.label}: restored {dc.CONFIG_FILE}"
                    )
            book.release(id_)
            save_ledger(session, LEDGER, book)

    def _apply(self, id_: str, props: dict[str, Any], original: str | None, first: bool) -> dict[str, Any]:
        target = ssh_target(props)
        listener = listener_from(props)
        mechanisms = str(props.get("auth_mechanisms") or dc.DEFAULT_MECHANISMS)
        text = props["managed_file"]
        with host_lock(target.label), Session(target) as session, session.host_lock("a DovecotAuthService change"):
            host = DovecotHost(session)
            facts = host.facts()
            book = load_ledger(session, LEDGER)
            _check_on_host(target.label, facts)
            if first:
                original = facts.current
            # The host's record of the file before any resource of ours wrote it wins over our own.
            recorded = book.originals.get(_KEY)
            if recorded is not None:
                original = recorded.get("text")
            if facts.current != text:
                pulumi.log.info(f"{target.label}: writing {dc.CONFIG_FILE} ({listener.kind} listener, {mechanisms})")
                _apply_file(host, facts, text, listener, mechanisms)
            book.claim(id_, [_KEY], {_KEY: {"text": original}})
            save_ledger(session, LEDGER, book)
        return {**props, "original_file": original or "", "dovecot_version": facts.version_text.split()[0]}


def _check_on_host(label: str, facts: DovecotFacts) -> None:
    if facts.version_text in ("", "none"):
        raise ApplyError(f"{label}: Dovecot is not installed (no `dovecot --version`). Nothing was changed.")
    version = dc.parse_version(facts.version_text)
    if not dc.version_supported(version):
        raise ApplyError(
            f"{label}: Dovecot {facts.version_text.split()[0]} is not supported (only 2.3; 2.4 renamed the auth "
            "settings). Nothing was changed."
        )
    if not facts.conf_d_included:
        raise ApplyError(
            f"{label}: /etc/dovecot/dovecot.conf does not include conf.d/*.conf, so {dc.CONFIG_FILE} would not be "
            "read. Nothing was changed."
        )
    if not facts.running:
        raise ApplyError(f"{label}: Dovecot is not running; start it first. Nothing was changed.")


def _apply_file(host: DovecotHost, facts: DovecotFacts, text: str, listener: dc.Listener, mechanisms: str) -> None:
    label = host.label
    try:
        host.check_staged(text)
    except DovecotError as exc:
        raise ApplyError(f"{exc}. Nothing was changed.") from None
    offset = host.s.file_size(facts.log_file)
    host.write(text, expect_sha256=facts.current_sha256)
    try:
        host.reload()
        host.verify(listener, mechanisms)
        errors = host.log_errors(facts.log_file, offset)
        if errors:
            raise DovecotError(f"{label}: the Dovecot log says: " + " | ".join(errors[-3:]))
    except Exception as exc:  # whatever went wrong, the host must not keep a half-applied change
        host.write(facts.current)
        host.reload()
        time.sleep(0.5)
        reason = str(exc).removeprefix(f"{label}: ")
        raise ApplyError(
            f"{label}: Dovecot failed after the change of {dc.CONFIG_FILE}: {reason}. The previous file was put "
            "back and Dovecot reloaded."
        ) from None


class DovecotAuthService(dyn.Resource, module="dovecot", name="DovecotAuthService"):
    """Dovecot's auth listener for Postfix SASL; `sasl_path` feeds PostfixConfig's sasl.path."""

    sasl_path: pulumi.Output[str]
    managed_file: pulumi.Output[str]
    dovecot_version: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        connection: Any,
        listener: str = "unix",
        socket_path: str | None = None,
        listen_port: int | None = None,
        bind_address: str | None = None,
        allow_all_interfaces: bool = False,
        auth_mechanisms: str = dc.DEFAULT_MECHANISMS,
        postfix_queue_directory: str | None = None,
        insecure_ignore_host_key: bool = False,
        use_sudo: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ):
        props = {
            **conn.connection_props(connection, insecure_ignore_host_key, use_sudo),
            "listener": listener,
            "socket_path": socket_path,
            "listen_port": listen_port,
            "bind_address": bind_address,
            "allow_all_interfaces": allow_all_interfaces,
            "auth_mechanisms": auth_mechanisms,
            "postfix_queue_directory": postfix_queue_directory,
            "managed_file": None,
            "sasl_path": None,
            "original_file": None,
            "dovecot_version": None,
        }
        super().__init__(DovecotAuthServiceProvider(), resource_name, props, opts)
