"""PostfixConfig: main.cf directives on one host, applied safely over SSH.

Every apply goes stage -> `postconf -n` + `postfix check` on the staged copy ->
atomic swap -> `postfix reload` -> SMTP probe (banner, EHLO) and a look at the
mail log; on any failure the previous main.cf goes back and Postfix is left
serving. Originals of every managed directive are recorded, and given back on
delete or when a directive leaves the stack.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi.dynamic as dyn

from components import connection as conn
from components.core import postfix_rules as rules
from components.core.postfix_plan import Plan, live_values, plan_edit, plan_restore
from components.remote.postfix_host import PostfixError, PostfixHost
from components.remote.ssh import RemoteError, Session

MANAGED_MAPS = ("limits", "directives")

# Operations on one host must not interleave (the provider runs several on threads).
_host_locks: dict[str, threading.Lock] = {}
_host_locks_guard = threading.Lock()


def _host_lock(label: str) -> threading.Lock:
    with _host_locks_guard:
        return _host_locks.setdefault(label, threading.Lock())


def originals_to_state(originals: Mapping[str, str | None]) -> dict[str, str]:
    """Pulumi drops null map values, so "was absent" is stored as an empty string.

    A recorded definition is never empty: it always holds at least `name =`.
    """
    return {name: raw or "" for name, raw in originals.items()}


def originals_from_state(stored: Mapping[str, str] | None) -> dict[str, str | None]:
    return {name: raw or None for name, raw in (stored or {}).items()}


class ApplyError(Exception):
    """A change could not be applied; the host was put back as it was."""


def desired_directives(props: Mapping[str, Any]) -> dict[str, str]:
    """Every main.cf directive the resource manages, values as main.cf text."""
    merged: dict[str, str] = {}
    for key in MANAGED_MAPS:
        for name, value in (props.get(key) or {}).items():
            merged[name] = rules.as_text(value)
    return merged


def check_props(props: Mapping[str, Any]) -> list[rules.Problem]:
    """Every rule that needs no host. Values still unknown at preview are skipped."""
    problems = conn.check_connection(props)
    limits = props.get("limits") or {}
    directives = props.get("directives") or {}
    if conn.is_unknown(limits) or conn.is_unknown(directives):
        return problems
    for name in limits:
        if name not in rules.DOS_DIRECTIVES:
            problems.append(rules.Problem(f"limits.{name}", "is not one of the guide's limits; use directives"))
    for name in directives:
        if name in limits:
            problems.append(rules.Problem(f"directives.{name}", "is also set under limits; set it in one place"))
    known: dict[str, str] = {}
    unknown: list[str] = []
    for key in MANAGED_MAPS:
        for name, value in (props.get(key) or {}).items():
            if conn.is_unknown(value):
                unknown.append(name)
            else:
                known[name] = rules.as_text(value)
    return problems + rules.check_directives(known, unknown=unknown)


def _normalized(props: Mapping[str, Any]) -> dict[str, Any]:
    """Inputs with managed values as main.cf text, so state and diffs compare like with like."""
    news = dict(props)
    for key in MANAGED_MAPS:
        value = news.get(key)
        if isinstance(value, Mapping):
            news[key] = {k: v if conn.is_unknown(v) else rules.as_text(v) for k, v in value.items()}
        elif value is None:
            news[key] = {}
    return news


def _failures(props: Mapping[str, Any], problems: list[rules.Problem]) -> list[dyn.CheckFailure]:
    where = conn.host_label(props)
    return [dyn.CheckFailure("", f"{where}: {p}") for p in problems]


class PostfixConfigProvider(dyn.ResourceProvider):
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dyn.CheckResult:
        inputs = _normalized(news)
        return dyn.CheckResult(inputs, _failures(inputs, check_props(inputs)))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.DiffResult:
        # changes=None: the engine diffs old and new inputs itself and shows each directive.
        return dyn.DiffResult(changes=None, replaces=conn.replaced_fields(olds, news))

    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        outs = self._apply(props, originals={})
        return dyn.CreateResult(id_=f"postfix:{props['host']}", outs=outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.UpdateResult:
        return dyn.UpdateResult(outs=self._apply(news, originals=originals_from_state(olds.get("originals"))))

    def read(self, id_: str, props: dict[str, Any]) -> dyn.ReadResult:
        target = conn.ssh_target(props)
        with _host_lock(target.label), Session(target) as session:
            text = PostfixHost(session).read_main_cf()
        live = live_values(text, desired_directives(props))
        refreshed = dict(props)
        for key in MANAGED_MAPS:
            refreshed[key] = {name: live[name] for name in props.get(key) or {}}
        inputs = {k: v for k, v in refreshed.items() if k not in ("originals", "postfix_version")}
        return dyn.ReadResult(id_=id_, outs=refreshed, inputs=inputs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        target = conn.ssh_target(props)
        with _host_lock(target.label), Session(target) as session:
            host = PostfixHost(session)
            facts = host.facts()
            plan = plan_restore(facts.main_cf, originals_from_state(props.get("originals")))
            _log(target.label, plan, "restoring originals")
            if not plan.empty:
                _apply_plan(host, facts, plan)

    # -- the apply pipeline -----------------------------------------------
    def _apply(self, props: dict[str, Any], originals: Mapping[str, str | None]) -> dict[str, Any]:
        target = conn.ssh_target(props)
        desired = desired_directives(props)
        with _host_lock(target.label), Session(target) as session:
            host = PostfixHost(session)
            facts = host.facts()
            _check_on_host(target.label, desired, facts)
            plan = plan_edit(facts.main_cf, desired, originals)
            _log(target.label, plan, "applying")
            if not plan.empty:
                _apply_plan(host, facts, plan)
        return {**props, "originals": originals_to_state(plan.originals), "postfix_version": facts.version}


def _check_on_host(label: str, desired: Mapping[str, str], facts) -> None:
    """The rules again, now with the host's own parameter list and its unmanaged limits."""
    problems = rules.check_directives(desired, known=facts.parameters)
    if not problems:
        current = live_values(facts.main_cf, rules.POSTFIX_DEFAULTS)
        effective = {k: v for k, v in current.items() if v is not None and v.isdigit()}
        effective.update({k: v for k, v in desired.items() if k in rules.POSTFIX_DEFAULTS})
        problems = rules.check_cross_fields(effective)
    if problems:
        raise ApplyError(f"{label}: " + "; ".join(str(p) for p in problems) + ". Nothing was changed.")


def _apply_plan(host: PostfixHost, facts, plan: Plan) -> None:
    label = host.label
    changed = ", ".join(c.name for c in plan.changes)
    try:
        host.check_staged(plan.text, facts.config_directory)
    except PostfixError as exc:
        raise ApplyError(f"{exc} (changed directives: {changed}). Nothing was changed.") from None
    offset = host.log_size(facts.log_file)
    host.swap_in(plan.text, facts.config_directory)
    try:
        host.reload()
        _verify(host, facts, offset)
    except RemoteError as exc:
        _roll_back(host, facts)
        reason = str(exc).removeprefix(f"{label}: ")
        raise ApplyError(
            f"{label}: Postfix failed after the change of {changed}: {reason}. The previous main.cf was put back "
            "and Postfix restarted; it answers SMTP again."
        ) from None


# reload is asynchronous: give the master time to retire children started on the old config.
_SETTLE_SECONDS = 1.0


def _verify(host: PostfixHost, facts, offset: int | None) -> None:
    """Probe SMTP; the mail log's fatal lines, if any, are the reason given."""

    def fail_on_fatal() -> None:
        fatals = host.log_fatals(facts.log_file, offset)
        if fatals:
            raise PostfixError(f"{host.label}: smtpd cannot start; the mail log says: " + " | ".join(fatals[-3:]))

    time.sleep(_SETTLE_SECONDS)
    try:
        host.probe_smtp(while_waiting=fail_on_fatal)
    except PostfixError:
        fail_on_fatal()
        raise
    fail_on_fatal()


def _roll_back(host: PostfixHost, facts) -> None:
    host.swap_in(facts.main_cf, facts.config_directory)
    # A crashed smtpd throttles the service; only stop + start lifts that.
    host.restart()
    deadline = time.monotonic() + 30
    while True:
        try:
            host.probe_smtp()
            return
        except RemoteError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _log(label: str, plan: Plan, what: str) -> None:
    if plan.empty:
        pulumi.log.debug(f"{label}: main.cf already as wanted")
        return
    for change in plan.changes:
        pulumi.log.info(f"{label}: {what} {change}")


class PostfixConfig(dyn.Resource, module="postfix", name="PostfixConfig"):
    """Manage main.cf directives on one host; see README for every field."""

    originals: pulumi.Output[dict]
    postfix_version: pulumi.Output[str]
    limits: pulumi.Output[dict]
    directives: pulumi.Output[dict]

    def __init__(
        self,
        resource_name: str,
        connection: Any,
        limits: Mapping[str, Any] | None = None,
        directives: Mapping[str, Any] | None = None,
        insecure_ignore_host_key: bool = False,
        use_sudo: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ):
        props = {
            **conn.connection_props(connection, insecure_ignore_host_key, use_sudo),
            "limits": dict(limits or {}),
            "directives": dict(directives or {}),
            "originals": None,
            "postfix_version": None,
        }
        super().__init__(PostfixConfigProvider(), resource_name, props, opts)
