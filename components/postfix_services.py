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
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi.dynamic as dyn

from components import connection as conn
from components import postfix_daemon as daemon
from components.core import mastercf
from components.core.problem import Problem
from components.core.tls_material import fingerprint
from components.provider import ApplyError, Change, HostProvider, run_change
from components.remote.postfix_host import PostfixError, PostfixFacts, PostfixHost
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


def _originals_to_state(originals: Mapping[str, str | None]) -> dict[str, str]:
    # Pulumi drops null map values: an entry that was absent is stored as "" (an entry is never empty).
    return {k: v or "" for k, v in originals.items()}


def _originals_from_state(stored: Mapping[str, str] | None) -> dict[str, str | None]:
    return {k: v or None for k, v in (stored or {}).items()}


class PostfixServicesProvider(HostProvider):
    resource = "PostfixServices"
    id_prefix = "postfix-services"
    named = frozenset({"services"})
    computed = COMPUTED_OUTPUTS

    problems = staticmethod(check_props)
    inputs = staticmethod(checked_inputs)

    def refresh(self, session: Session, id_: str, props: dict[str, Any]) -> dict[str, Any]:
        host = PostfixHost(session)
        text = _read_master(host, host.facts().config_directory)
        live = {e.key: e for e in mastercf.parse(text)}
        seen = {k: mastercf.one_line(live[k].text) if k in live else "" for k in (props.get("master_cf") or {})}
        return {**props, "master_cf": seen}

    def remove(self, session: Session, id_: str, props: dict[str, Any]) -> None:
        host = PostfixHost(session)
        facts = host.facts()
        current = _read_master(host, facts.config_directory)
        plan = mastercf.plan_restore(current, _originals_from_state(props.get("originals")))
        if plan.changes:
            _log(host.label, plan.changes, "restoring")
            run_change(MasterCfChange(host, facts, current, plan.text, {}, None))

    def apply(self, session: Session, id_: str, props: dict[str, Any], olds: Mapping[str, Any] | None) -> dict:
        originals = _originals_from_state((olds or {}).get("originals"))
        services = services_from(props)
        cert = props.get("tls_cert_pem")
        host = PostfixHost(session)
        facts = host.facts()
        current = _read_master(host, facts.config_directory)
        problems = mastercf.clash_problems(services, current)
        if problems:
            raise ApplyError(f"{host.label}: " + "; ".join(map(str, problems)) + ". Nothing was changed.")
        plan = mastercf.plan_edit(current, desired_entries(props), originals)
        if plan.changes:
            _log(host.label, plan.changes, "setting")
            tls_fingerprint = fingerprint(cert) if cert else None
            run_change(MasterCfChange(host, facts, current, plan.text, services, tls_fingerprint))
        return {**props, "originals": _originals_to_state(plan.originals)}


def _read_master(host: PostfixHost, directory: str) -> str:
    text = host.read_master_cf(directory)
    if text is None:
        raise ApplyError(f"{host.label}: {directory}/master.cf does not exist; is Postfix installed?")
    return text


def _encode(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


class MasterCfChange(Change):
    """master.cf: the staged checks, swap, `postfix reload`, port 25 and every managed listener probed."""

    daemon = "Postfix"
    changed = "master.cf"
    refusal = PostfixError

    def __init__(
        self,
        host: PostfixHost,
        facts: PostfixFacts,
        current: str,
        text: str,
        services: Mapping[str, mastercf.Service],
        tls_fingerprint: str | None,
    ):
        self.host, self.facts, self.current, self.text = host, facts, current, text
        self.services, self.tls_fingerprint = services, tls_fingerprint
        self.label = host.label
        self.offset: int | None = None

    def check_staged(self) -> None:
        self.host.check_staged_master(self.text, self.facts.config_directory)

    def prepare(self) -> None:
        self.offset = self.host.log_size(self.facts.log_file)

    def swap(self) -> None:
        expected = hashlib.sha256(_encode(self.current)).hexdigest()
        self.host.swap_in_master(self.text, self.facts.config_directory, expect_sha256=expected)

    def load(self) -> None:
        self.host.reload()
        daemon.wait_for_master(self.host, self.facts, self.offset, daemon.RELOAD_MARK)

    def verify(self) -> None:
        _probe(self.host, self.services, self.tls_fingerprint)
        fatals = self.host.log_fatals(self.facts.log_file, self.offset)
        if fatals:
            raise PostfixError(f"{self.label}: the mail log says: " + " | ".join(fatals[-3:]))

    def roll_back(self, swapped: bool) -> str:
        if not swapped:
            return ""
        self.host.swap_in_master(self.current, self.facts.config_directory)
        state = "it answers SMTP again" if daemon.restart_until_answering(self.host) else "it does not answer SMTP"
        return f"The previous master.cf was put back and Postfix restarted; {state}"


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
