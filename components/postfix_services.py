"""PostfixServices: the submission services of master.cf (587 STARTTLS, 465 TLS from the first byte) on one host.

It owns only its own entries of master.cf, each shown as one line in the diff (`master_cf`),
and leaves every other byte of the file alone. Apply: plan the edit -> `postconf -M`,
`postconf -n` and `postfix check` on a staged copy -> atomic swap (only if the file is
still the one read) -> `postfix reload` -> probe port 25 and every managed listener
(STARTTLS or implicit TLS with the deployed certificate, TLS 1.2+) -> on any failure the
previous master.cf goes back and Postfix is restarted. The text each entry had before is
kept in state; destroy gives it back (or removes the entry), byte for byte.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi.dynamic as dyn

from components import connection as conn
from components.core import mastercf
from components.core.postfix_rules import Problem
from components.core.tls_material import fingerprint
from components.postfix_config import (
    _RELOAD_MARK,
    ApplyError,
    _wait_for_master,
    _wait_until_answering,
    host_lock,
    ssh_target,
)
from components.remote.postfix_host import PostfixError, PostfixHost
from components.remote.ssh import RemoteError, Session

COMPUTED_OUTPUTS = ("originals",)


def services_from(props: Mapping[str, Any]) -> dict[str, mastercf.Service]:
    services = {}
    for label, raw in (props.get("services") or {}).items():
        raw = raw or {}
        services[label] = mastercf.Service(
            type=str(raw.get("type") or label),
            listen=str(raw.get("listen") or ""),
            options={
                str(k): v if isinstance(v, str) else _number_text(v) for k, v in (raw.get("options") or {}).items()
            },
        )
    return services


def _number_text(value: Any) -> str:
    # Numbers reach the provider as floats (protobuf): 10.0 is the limit 10.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def check_props(props: Mapping[str, Any]) -> list[Problem]:
    problems = conn.check_connection(props)
    if conn.is_unknown(props.get("services")):
        return problems
    if not props.get("services"):
        problems.append(Problem("services", "is empty: name at least one of submission, submissions"))
    if not props.get("tls_cert_pem"):
        problems.append(Problem("tls_cert_pem", "is required: the submission services need TLS (PostfixConfig tls)"))
    return problems + mastercf.service_problems(services_from(props))


def desired_entries(props: Mapping[str, Any]) -> dict[str, str]:
    return {s.key: mastercf.render(s) for s in services_from(props).values()}


def checked_inputs(props: Mapping[str, Any]) -> dict[str, Any]:
    inputs = {k: props.get(k) for k in (*conn.CONNECTION_FIELDS, *conn.OPTION_FIELDS, "services", "tls_cert_pem")}
    if not conn.is_unknown(props.get("services")) and not mastercf.service_problems(services_from(props)):
        inputs["master_cf"] = {k: mastercf.one_line(t) for k, t in desired_entries(props).items()}
    return {k: v for k, v in inputs.items() if v is not None}


def _failures(props: Mapping[str, Any], problems: list[Problem]) -> list[dyn.CheckFailure]:
    where = conn.host_label(props)
    named = {*conn.NAMED_PROPERTIES, "services"}
    return [dyn.CheckFailure(conn.failure_property(p.field, named), f"{where}: {p}") for p in problems]


def _originals_to_state(originals: Mapping[str, str | None]) -> dict[str, str]:
    # Pulumi drops null map values: an entry that was absent is stored as "" (an entry is never empty).
    return {k: v or "" for k, v in originals.items()}


def _originals_from_state(stored: Mapping[str, str] | None) -> dict[str, str | None]:
    return {k: v or None for k, v in (stored or {}).items()}


class PostfixServicesProvider(dyn.ResourceProvider):
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dyn.CheckResult:
        return dyn.CheckResult(checked_inputs(news), _failures(news, check_props(news)))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.DiffResult:
        return dyn.DiffResult(changes=None, replaces=conn.replaced_fields(olds, news))

    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        id_ = f"postfix-services:{props['host']}:{secrets.token_hex(4)}"
        return dyn.CreateResult(id_=id_, outs=self._apply(props, {}))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.UpdateResult:
        return dyn.UpdateResult(outs=self._apply(news, _originals_from_state(olds.get("originals"))))

    def read(self, id_: str, props: dict[str, Any]) -> dyn.ReadResult:
        target = ssh_target(props)
        with host_lock(target.label), Session(target) as session:
            host = PostfixHost(session)
            text = _read_master(host, host.facts().config_directory)
        live = {e.key: e for e in mastercf.parse(text)}
        seen = {k: mastercf.one_line(live[k].text) if k in live else "" for k in (props.get("master_cf") or {})}
        refreshed = {**props, "master_cf": seen}
        inputs = {k: v for k, v in refreshed.items() if k not in COMPUTED_OUTPUTS}
        return dyn.ReadResult(id_=id_, outs=refreshed, inputs=inputs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        target = ssh_target(props)
        originals = _originals_from_state(props.get("originals"))
        with host_lock(target.label), Session(target) as session, session.host_lock("a PostfixServices delete"):
            host = PostfixHost(session)
            directory = host.facts().config_directory
            current = _read_master(host, directory)
            plan = mastercf.plan_restore(current, originals)
            if plan.changes:
                _log(target.label, plan.changes, "restoring")
                _apply_text(host, directory, current, plan.text, {}, None)

    def _apply(self, props: dict[str, Any], originals: Mapping[str, str | None]) -> dict[str, Any]:
        target = ssh_target(props)
        services = services_from(props)
        cert = props.get("tls_cert_pem")
        with host_lock(target.label), Session(target) as session, session.host_lock("a PostfixServices apply"):
            host = PostfixHost(session)
            directory = host.facts().config_directory
            current = _read_master(host, directory)
            problems = mastercf.clash_problems(services, current)
            if problems:
                raise ApplyError(f"{target.label}: " + "; ".join(map(str, problems)) + ". Nothing was changed.")
            plan = mastercf.plan_edit(current, desired_entries(props), originals)
            if plan.changes:
                _log(target.label, plan.changes, "setting")
                _apply_text(host, directory, current, plan.text, services, fingerprint(cert) if cert else None)
        return {**props, "originals": _originals_to_state(plan.originals)}


def _read_master(host: PostfixHost, directory: str) -> str:
    data = host.s.read_file(f"{directory}/master.cf")
    if data is None:
        raise ApplyError(f"{host.label}: {directory}/master.cf does not exist; is Postfix installed?")
    return data.decode("utf-8", errors="surrogateescape")


def _encode(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


def _apply_text(
    host: PostfixHost,
    directory: str,
    current: str,
    text: str,
    services: Mapping[str, mastercf.Service],
    tls_fingerprint: str | None,
) -> None:
    label = host.label
    try:
        host.check_staged_master(text, directory)
    except PostfixError as exc:
        raise ApplyError(f"{exc}. Nothing was changed.") from None
    facts = host.facts()
    offset = host.s.file_size(facts.log_file)
    host.swap_in_master(text, directory, expect_sha256=hashlib.sha256(_encode(current)).hexdigest())
    try:
        host.reload()
        _wait_for_master(host, facts, offset, _RELOAD_MARK)
        _probe(host, services, tls_fingerprint)
        fatals = host.log_fatals(facts.log_file, offset)
        if fatals:
            raise PostfixError(f"{label}: the mail log says: " + " | ".join(fatals[-3:]))
    except Exception as exc:  # whatever went wrong, the host must not keep a half-applied change
        host.swap_in_master(current, directory)
        host.restart()
        answering = _wait_until_answering(host)
        reason = str(exc).removeprefix(f"{label}: ")
        state = "it answers SMTP again" if answering else "it does not answer SMTP"
        raise ApplyError(
            f"{label}: Postfix failed after the change of master.cf: {reason}. The previous master.cf was put back "
            f"and Postfix restarted; {state}."
        ) from None


def _probe(host: PostfixHost, services: Mapping[str, mastercf.Service], tls_fingerprint: str | None) -> None:
    """Port 25 still answers, and every managed listener speaks SMTP the way its type says."""
    host.probe_smtp()
    for label, service in services.items():
        port = mastercf.port_of(service.name)
        address = service.name.rsplit(":", 1)[0].strip("[]") if ":" in service.name else "127.0.0.1"
        try:
            if service.type == "submissions" and tls_fingerprint:
                host.probe_implicit_tls(address, int(port or 0), tls_fingerprint)
            else:
                host.probe_smtp(address, int(port or 0), tls_fingerprint=tls_fingerprint)
        except RemoteError as exc:
            raise PostfixError(f"{host.label}: services.{label} ({service.name}): {exc}") from None


def _log(label: str, changes: list[tuple[str, str, str]], what: str) -> None:
    for key, old, new in changes:
        pulumi.log.info(f"{label}: {what} master.cf {key}: {old or '(absent)'} => {new or '(absent)'}")


class PostfixServices(dyn.Resource, module="postfix", name="PostfixServices"):
    """Managed master.cf submission entries on one host; see README ("services")."""

    master_cf: pulumi.Output[dict]
    originals: pulumi.Output[dict]

    def __init__(
        self,
        resource_name: str,
        connection: Any,
        services: Mapping[str, Any],
        tls_cert_pem: pulumi.Input[str] | None = None,
        insecure_ignore_host_key: bool = False,
        use_sudo: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ):
        props = {
            **conn.connection_props(connection, insecure_ignore_host_key, use_sudo),
            "services": {k: dict(v or {}) for k, v in services.items()},
            "tls_cert_pem": tls_cert_pem,
            "master_cf": None,
            "originals": None,
        }
        super().__init__(PostfixServicesProvider(), resource_name, props, opts)
