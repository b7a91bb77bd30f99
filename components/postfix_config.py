"""PostfixConfig: main.cf directives (and the TLS files they name) on one host, over SSH.

Every apply goes stage -> `postconf -n` + `postfix check` on the staged copy ->
atomic swap -> `postfix reload` -> SMTP probe (banner, EHLO, STARTTLS when TLS
is managed) and a look at the mail log; on any failure the previous files go
back and Postfix is left serving. Originals of every managed directive are
recorded, and given back on delete or when a directive leaves the stack.

The user-facing inputs (limits, directives, sasl, tls) are folded by `check`
into one `main_cf` map: that is what the engine stores, diffs and shows, one
line per directive, and what `read` fills with the host's live values.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import os
import posixpath
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic as dyn

from components import connection as conn
from components.core import compliance, ledger, maincf
from components.core import postfix_features as features
from components.core import postfix_rules as rules
from components.core.postfix_plan import Plan, live_values, plan_edit, plan_restore
from components.core.tls_material import certificate_problems, fingerprint
from components.remote.postfix_host import PostfixError, PostfixFacts, PostfixHost
from components.remote.ssh import RemoteError, Session, SshTarget

COMPUTED_OUTPUTS = ("originals", "overridden", "created_files", "postfix_version")

# Operations on one host must not interleave (the provider runs several on threads).
_host_locks: dict[str, threading.Lock] = {}
_host_locks_guard = threading.Lock()


def host_lock(label: str) -> threading.Lock:
    with _host_locks_guard:
        return _host_locks.setdefault(label, threading.Lock())


class ApplyError(Exception):
    """A change could not be applied; the host was put back as it was."""


# A recorded definition starts with its name, never with "=": the prefix marks bytes kept as base64.
_BASE64_PREFIX = "=base64:"


def ssh_target(props: Mapping[str, Any]) -> SshTarget:
    """The SSH target, with the operator's time limits when set (a slow link, or a test of a cut one).

    SECURE_POSTFIX_CONNECT_TIMEOUT and SECURE_POSTFIX_COMMAND_TIMEOUT are seconds.
    """
    target = conn.ssh_target(props)
    limits = {
        field: float(os.environ[name])
        for field, name in (
            ("connect_timeout", "SECURE_POSTFIX_CONNECT_TIMEOUT"),
            ("command_timeout", "SECURE_POSTFIX_COMMAND_TIMEOUT"),
        )
        if os.environ.get(name)
    }
    return dataclasses.replace(target, **limits) if limits else target


def originals_to_state(originals: Mapping[str, str | None]) -> dict[str, str]:
    """Pulumi drops null map values, so "was absent" is stored as an empty string.

    A recorded definition is never empty: it always holds at least `name =`.
    State holds UTF-8 only; a definition with other bytes is kept exactly, as base64.
    """
    return {name: _raw_to_state(raw) for name, raw in originals.items()}


def _raw_to_state(raw: str | None) -> str:
    if not raw:
        return ""
    data = maincf.encode(raw)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _BASE64_PREFIX + base64.b64encode(data).decode("ascii")


def originals_from_state(stored: Mapping[str, str] | None) -> dict[str, str | None]:
    return {name: _raw_from_state(raw) for name, raw in (stored or {}).items()}


def earlier_to_state(earlier: Mapping[str, list[tuple[int, str]]]) -> dict[str, list]:
    """Overridden definitions the edit removed: name -> [[base position, exact text], ...]."""
    return {name: [[pos, _raw_to_state(raw)] for pos, raw in items] for name, items in earlier.items()}


def earlier_from_state(stored: Mapping[str, list] | None) -> dict[str, list[tuple[int, str]]]:
    return {
        name: [(int(pos), _raw_from_state(raw) or "") for pos, raw in items] for name, items in (stored or {}).items()
    }


def _raw_from_state(raw: str) -> str | None:
    if raw.startswith(_BASE64_PREFIX):
        return maincf.decode(base64.b64decode(raw.removeprefix(_BASE64_PREFIX)))
    return raw or None


# -- check: everything that needs no host -------------------------------------------


def _text(value: Any) -> Any:
    return value if conn.is_unknown(value) else rules.as_text(value)


def fold_main_cf(props: Mapping[str, Any]) -> dict[str, Any]:
    """limits + directives + the sasl and tls blocks, as main.cf text (unknowns kept)."""
    main_cf: dict[str, Any] = {}
    for key in ("limits", "directives"):
        main_cf.update({k: _text(v) for k, v in (props.get(key) or {}).items()})
    if props.get("sasl"):
        main_cf.update({k: _text(v) for k, v in features.sasl_directives(props["sasl"]).items()})
    if props.get("tls"):
        main_cf.update(features.tls_directives(props["tls"]))
    return main_cf


def check_props(props: Mapping[str, Any]) -> list[rules.Problem]:
    """Every rule that needs no host. Values still unknown at preview are skipped."""
    problems = conn.check_connection(props)
    limits = props.get("limits") or {}
    directives = props.get("directives") or {}
    sasl, tls = props.get("sasl"), props.get("tls")
    if any(conn.is_unknown(v) for v in (limits, directives, sasl, tls)):
        return problems
    for name in limits:
        if name not in rules.DOS_DIRECTIVES:
            problems.append(rules.Problem(f"limits.{name}", "is not one of the guide's limits; use directives"))
    for name in directives:
        if name in limits:
            problems.append(rules.Problem(f"directives.{name}", "is also set under limits; set it in one place"))
    problems += features.overlapping_directives(directives, sasl, tls)
    if sasl:
        problems += features.sasl_problems(sasl, tls, conn.is_unknown)
    if tls:
        problems += features.tls_problems(tls)
        cert, key = tls.get("cert_pem"), props.get("tls_key_pem")
        if not key:
            problems.append(rules.Problem("tls_key_pem", "is required with tls: the private key (a Pulumi secret)"))
        elif isinstance(cert, str) and isinstance(key, str) and cert:
            problems += [rules.Problem(f, m) for f, m in certificate_problems(cert, key)]
    main_cf = fold_main_cf(props)
    known = {k: v for k, v in main_cf.items() if not conn.is_unknown(v)}
    unknown = [k for k, v in main_cf.items() if conn.is_unknown(v)]
    return problems + rules.check_directives(known, unknown=unknown)


def checked_inputs(props: Mapping[str, Any]) -> dict[str, Any]:
    """What the engine stores: connection, main_cf, and the TLS material to deploy."""
    inputs = {k: props.get(k) for k in (*conn.CONNECTION_FIELDS, *conn.OPTION_FIELDS)}
    inputs["main_cf"] = fold_main_cf(props)
    tls = props.get("tls") or {}
    inputs["compliance"] = _compliance(inputs["main_cf"], public_mx=bool(tls.get("public_mx", True)))
    inputs["tls_cert_pem"] = tls.get("cert_pem") if tls else None
    inputs["tls_key_pem"] = props.get("tls_key_pem") if tls else None
    return {k: v for k, v in inputs.items() if v is not None}


def _compliance(main_cf: Mapping[str, Any], public_mx: bool) -> dict[str, str]:
    return compliance.report(main_cf, public_mx, pending=[k for k, v in main_cf.items() if conn.is_unknown(v)])


def _failures(props: Mapping[str, Any], problems: list[rules.Problem]) -> list[dyn.CheckFailure]:
    where = conn.host_label(props)
    return [dyn.CheckFailure(conn.failure_property(p.field), f"{where}: {p}") for p in problems]


# -- the provider ----------------------------------------------------------------------


class PostfixConfigProvider(dyn.ResourceProvider):
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dyn.CheckResult:
        problems = check_props(news)
        return dyn.CheckResult(checked_inputs(news), _failures(news, problems))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.DiffResult:
        # changes=None: the engine diffs old and new inputs itself and shows each directive.
        return dyn.DiffResult(changes=None, replaces=conn.replaced_fields(olds, news))

    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        # A fresh id per resource: two resources on one machine (a rename, another port) are two owners.
        id_ = f"postfix:{props['host']}:{secrets.token_hex(4)}"
        outs = self._apply(id_, props, originals={}, earlier={}, created=[])
        return dyn.CreateResult(id_=id_, outs=outs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.UpdateResult:
        originals = originals_from_state(olds.get("originals"))
        earlier = earlier_from_state(olds.get("overridden"))
        created = list(olds.get("created_files") or [])
        return dyn.UpdateResult(outs=self._apply(id_, news, originals, earlier, created))

    def read(self, id_: str, props: dict[str, Any]) -> dyn.ReadResult:
        target = ssh_target(props)
        with host_lock(target.label), Session(target) as session, session.host_lock("a PostfixConfig refresh"):
            host = PostfixHost(session)
            facts = host.facts()
            journal = Journal.load(host, facts, id_)
            # A change cut off half way is undone first, so refresh reads what Postfix really runs.
            facts = journal.resolve(facts)
        live = live_values(facts.main_cf, props.get("main_cf") or {})
        # Pulumi drops null map values; an absent directive reads as "" so the drift still shows.
        refreshed = {**props, "main_cf": {k: "" if v is None else maincf.printable(v) for k, v in live.items()}}
        refreshed["compliance"] = _compliance(refreshed["main_cf"], compliance.public_mx_of(props.get("compliance")))
        inputs = {k: v for k, v in refreshed.items() if k not in COMPUTED_OUTPUTS}
        return dyn.ReadResult(id_=id_, outs=refreshed, inputs=inputs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        target = ssh_target(props)
        with host_lock(target.label), Session(target) as session, session.host_lock("a PostfixConfig delete"):
            host = PostfixHost(session)
            facts = host.facts()
            journal = Journal.load(host, facts, id_)
            facts = journal.resolve(facts)
            book = journal.book
            mine = Holdings.from_state(props)
            mine = mine.merged_with(book, id_)
            # What another resource still declares stays as it is: that one gives it back.
            others = book.declared_by_others(id_)
            names = [n for n in mine.originals if ledger.directive_key(n) not in others]
            plan = plan_restore(
                facts.main_cf,
                {n: mine.originals[n] for n in names},
                {n: mine.earlier[n] for n in names if n in mine.earlier},
            )
            if not plan.empty:
                _apply_plan(host, facts, plan, files={}, tls_fingerprint=None, journal=journal)
            created = [p for p in mine.created if ledger.path_key(p) not in others]
            if created:
                host.remove_files(created)
                pulumi.log.info(f"{target.label}: removed {', '.join(created)}")
            book.release(id_)
            journal.commit(plan.changes, "restored")

    # -- the apply pipeline -------------------------------------------------------------
    def _apply(
        self,
        id_: str,
        props: dict[str, Any],
        originals: Mapping[str, str | None],
        earlier: Mapping[str, list[tuple[int, str]]],
        created: list[str],
    ) -> dict:
        target = ssh_target(props)
        desired = {k: str(v) for k, v in (props.get("main_cf") or {}).items()}
        files = _tls_files(props)
        cert = props.get("tls_cert_pem")
        with host_lock(target.label), Session(target) as session, session.host_lock("a PostfixConfig apply"):
            host = PostfixHost(session)
            facts = host.facts()
            journal = Journal.load(host, facts, id_)
            facts = journal.resolve(facts)
            book = journal.book
            _check_on_host(target.label, desired, facts)
            declared = [*files, *sorted({p.rsplit("/", 1)[0] + "/" for p in files})]
            mine = Holdings(dict(originals), dict(earlier), list(created)).merged_with(book, id_, desired, declared)
            others = book.declared_by_others(id_)
            # A name this resource leaves that another still declares is not given back here.
            known = {n: r for n, r in mine.originals.items() if n in desired or ledger.directive_key(n) not in others}
            plan = plan_edit(facts.main_cf, desired, known, {n: e for n, e in mine.earlier.items() if n in known})
            _check_sasl_endpoint(host, facts, plan)
            digests = host.file_digests(list(files)) if files else {}
            changed_files = {p: f for p, f in files.items() if digests.get(p) != _sha256(f[0])}
            created = sorted(set(mine.created) | {p for p in changed_files if digests.get(p) is None})
            for file_path in changed_files:
                pulumi.log.info(f"{target.label}: deploying {file_path}")
            if not plan.empty or changed_files:
                made = _apply_plan(
                    host, facts, plan, changed_files, fingerprint(cert) if cert else None, journal=journal
                )
                created = sorted(set(created) | set(made))
            held = Holdings(plan.originals, plan.earlier, created)
            book.claim(id_, held.keys(declared), held.ledger_originals(declared))
            journal.commit(plan.changes, "changed")
        return {
            **props,
            "originals": originals_to_state(plan.originals),
            "overridden": earlier_to_state(plan.earlier),
            "created_files": created,
            "postfix_version": facts.version,
        }


@dataclass
class Holdings:
    """What one resource holds on its host: first originals of its directives, files it created."""

    originals: dict[str, str | None]
    earlier: dict[str, list[tuple[int, str]]]
    created: list[str]

    @classmethod
    def from_state(cls, props: Mapping[str, Any]) -> Holdings:
        return cls(
            originals_from_state(props.get("originals")),
            earlier_from_state(props.get("overridden")),
            list(props.get("created_files") or []),
        )

    def merged_with(
        self, book: ledger.Ledger, owner: str, desired: Iterable[str] = (), paths: Iterable[str] = ()
    ) -> Holdings:
        """The host's first originals win over this resource's own record (which may be a hand-over's)."""
        owned = book.owners.get(owner, [])
        names = set(self.originals) | set(desired) | {ledger.key_name(k) for k in owned if k.startswith("main.cf:")}
        originals, earlier = dict(self.originals), dict(self.earlier)
        for name in names:
            first = book.originals.get(ledger.directive_key(name))
            if first is not None:
                originals[name] = first.get("raw")
                earlier.pop(name, None)
                if first.get("earlier"):
                    earlier[name] = [(int(pos), raw) for pos, raw in first["earlier"]]
        created = set(self.created)
        for key in {*owned, *(ledger.path_key(p) for p in paths)}:
            first = book.originals.get(key)
            if key.startswith("path:") and first is not None:
                (created.discard if first.get("existed") else created.add)(ledger.key_name(key))
        return Holdings(originals, earlier, sorted(created))

    def keys(self, paths: Iterable[str]) -> list[str]:
        return [*(ledger.directive_key(n) for n in self.originals), *(ledger.path_key(p) for p in paths)]

    def ledger_originals(self, paths: Iterable[str]) -> dict[str, Any]:
        firsts: dict[str, Any] = {
            ledger.directive_key(n): {"raw": raw, "earlier": [list(e) for e in self.earlier.get(n, [])]}
            for n, raw in self.originals.items()
        }
        firsts.update({ledger.path_key(p): {"existed": p not in self.created} for p in paths})
        return firsts


def ledger_path(config_directory: str) -> str:
    return posixpath.join(config_directory, ledger.FILE_NAME)


def load_ledger(session: Session, path: str) -> ledger.Ledger:
    data = session.read_file(path)
    try:
        return ledger.Ledger.parse(data.decode("ascii") if data else None)
    except (ledger.LedgerError, UnicodeDecodeError) as exc:
        raise ApplyError(
            f"{session.target.label}: {path}, the project's record of first originals, {exc}; mend or remove it "
            "by hand. Nothing was changed."
        ) from None


def save_ledger(session: Session, path: str, book: ledger.Ledger) -> None:
    if book.empty:
        session.run(["rm", "-f", "--", path])
    else:
        session.write_file_atomic(path, book.render().encode("ascii"), mode="0600", owner="root:root")


BACKUP_SUFFIX = ".secure-postfix-prev"


@dataclass
class Journal:
    """The ledger on one host, with the change under way recorded in it (`pending`).

    Written before the first byte of a change lands (main.cf and TLS files backed up beside
    themselves), cleared with the same write that records the result. If the link or the
    controller dies in between, the next operation on the host finds the record and undoes the
    change (backups back, Postfix reloaded), so that file, daemon and state agree again.
    """

    host: PostfixHost
    path: str
    main_cf: str
    book: ledger.Ledger
    owner: str

    @classmethod
    def load(cls, host: PostfixHost, facts: PostfixFacts, owner: str) -> Journal:
        path = ledger_path(facts.config_directory)
        main_cf = posixpath.join(facts.config_directory, "main.cf")
        return cls(host, path, main_cf, load_ledger(host.s, path), owner)

    def begin(self, facts: PostfixFacts, new_text: str, files: list[str], made: list[str]) -> None:
        self.host.backup_files([self.main_cf, *files])
        self.book.pending = {
            "owner": self.owner,
            "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "before": facts.main_cf_sha256 or "",
            "after": hashlib.sha256(maincf.encode(new_text)).hexdigest(),
            "files": files,
            "made": made,
        }
        save_ledger(self.host.s, self.path, self.book)

    def end(self) -> None:
        """The change is over (applied, or rolled back): forget it, drop the backups."""
        pending, self.book.pending = self.book.pending, None
        save_ledger(self.host.s, self.path, self.book)
        if pending:
            self.host.drop_backups([self.main_cf, *pending.get("files", [])])

    def commit(self, changes: list, verb: str) -> None:
        """Record the result; past the point of no return, so a failure here says the change is live."""
        try:
            live = self.book.pending is not None
            self.end()
        except RemoteError as exc:
            if not live:
                raise
            raise ApplyError(
                f"{self.host.label}: the change was applied and Postfix reloaded, but recording it on the host "
                f"({self.path}) failed: {str(exc).removeprefix(self.host.label + ': ')}. The next operation on this "
                "host reconciles it (undoes it, and `up` applies it again)."
            ) from None
        for change in changes:
            pulumi.log.info(f"{self.host.label}: {verb} {change}")

    def resolve(self, facts: PostfixFacts) -> PostfixFacts:
        """Undo a change an earlier operation left half done; returns the facts as they are now."""
        pending = self.book.pending
        if not pending:
            # Backups outlive a change cut off after its record was cleared, before they were removed.
            self.host.drop_backups([self.main_cf, features.TLS_CERT_FILE, features.TLS_KEY_FILE])
            return facts
        label, started = self.host.label, pending.get("started", "?")
        if facts.main_cf_sha256 not in (pending.get("before"), pending.get("after")):
            raise ApplyError(
                f"{label}: an apply started at {started} was cut off, and {self.main_cf} was changed since by "
                f"something else; its content before that apply is in {self.main_cf}{BACKUP_SUFFIX}. Put main.cf "
                f'right by hand, then remove the "pending" entry from {self.path}. Nothing was changed.'
            )
        self.host.s.sh('[ ! -e "$1$2" ] || mv -f -- "$1$2" "$1"', self.main_cf, BACKUP_SUFFIX)
        files = list(pending.get("files", []))
        if files:
            self.host.restore_files(files)
        self.host.remove_files(list(pending.get("made", [])))
        restored = self.host.facts()
        offset = self.host.s.file_size(restored.log_file)
        _load(self.host, restored, offset, _failure_before(self.host, restored, offset))
        self.book.pending = None
        save_ledger(self.host.s, self.path, self.book)
        pulumi.log.warn(
            f"{label}: an apply started at {started} was cut off before it finished; it was undone first "
            "(main.cf and TLS files as they were before it, Postfix reloaded)"
        )
        return restored


def _tls_files(props: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """path -> (content, mode) of the files the tls block deploys."""
    cert, key = props.get("tls_cert_pem"), props.get("tls_key_pem")
    if not cert or not key:
        return {}
    return {features.TLS_CERT_FILE: (cert, "0644"), features.TLS_KEY_FILE: (key, "0600")}


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _check_on_host(label: str, desired: Mapping[str, str], facts: PostfixFacts) -> None:
    """The rules again, now with the host's own parameter list and its unmanaged limits."""
    problems = rules.check_directives(desired, known=facts.parameters)
    if not problems:
        current = live_values(facts.main_cf, rules.POSTFIX_DEFAULTS)
        effective = {k: v for k, v in current.items() if v is not None and v.isdigit()}
        effective.update({k: v for k, v in desired.items() if k in rules.POSTFIX_DEFAULTS})
        problems = rules.check_cross_fields(effective)
    if any(v.startswith(">=") for k, v in desired.items() if k.endswith("_protocols")) and _older_than(
        facts.version, (3, 6)
    ):
        problems.append(
            rules.Problem(
                "tls.protocols",
                f"Postfix {facts.version} does not know the >= syntax (3.6+); use !SSLv2, !SSLv3, !TLSv1, !TLSv1.1",
            )
        )
    if problems:
        raise ApplyError(f"{label}: " + "; ".join(str(p) for p in problems) + ". Nothing was changed.")


def _check_sasl_endpoint(host: PostfixHost, facts: PostfixFacts, plan: Plan) -> None:
    """Refuse to point smtpd at a Dovecot auth service it cannot reach."""
    wanted = next((c.new for c in plan.changes if c.name == "smtpd_sasl_path" and c.new), None)
    if wanted is None:
        return
    problem = host.sasl_endpoint_problem(wanted, facts.queue_directory)
    if problem:
        raise ApplyError(
            f"{host.label}: smtpd_sasl_path = {wanted}: {problem}. With no auth service there every new smtpd "
            "would die after STARTTLS; start Dovecot's auth listener first (DovecotAuthService). Nothing was changed."
        )


def _older_than(version: str, wanted: tuple[int, int]) -> bool:
    parts = [int(p) for p in version.split(".")[:2] if p.isdigit()]
    return len(parts) == 2 and tuple(parts) < wanted


def _apply_plan(
    host: PostfixHost,
    facts: PostfixFacts,
    plan: Plan,
    files: Mapping[str, tuple[str, str]],
    tls_fingerprint: str | None,
    journal: Journal,
) -> list[str]:
    """Apply a plan; returns the directories it created (as "path/").

    On success the journal still holds the change as pending: the caller's `journal.commit`
    records the result and ends it in one write.
    """
    label = host.label
    changed = ", ".join([c.name for c in plan.changes] + list(files)) or "nothing"
    try:
        host.check_staged(plan.text, facts.config_directory, plan.restored_duplicates)
    except PostfixError as exc:
        raise ApplyError(f"{exc} (changed: {changed}). Nothing was changed.") from None
    offset = host.s.file_size(facts.log_file)
    failing_before = _failure_before(host, facts, offset)
    paths = list(files)
    made: list[str] = []
    written: list[str] = []
    host.expect_unchanged(facts)
    for directory in sorted({p.rsplit("/", 1)[0] for p in paths}):
        if host.ensure_directory(directory):
            made.append(directory + "/")
    journal.begin(facts, plan.text, paths, made)
    swapped = False
    try:
        # The TLS files and main.cf are one transaction: all new, or all as they were.
        for path, (content, mode) in files.items():
            host.s.write_file_atomic(path, content.encode(), mode=mode, owner="root:root")
            written.append(path)
        host.swap_in(plan.text, facts.config_directory, expect_sha256=facts.main_cf_sha256)
        swapped = True
        _load(host, facts, offset, failing_before)
        _verify(host, facts, offset, tls_fingerprint)
    except Exception as exc:  # whatever went wrong, the host must not keep a half-applied change
        reason = str(exc).removeprefix(f"{label}: ")
        try:
            outcome = _undo(host, facts, journal, written, made, swapped, failing_before)
        except RemoteError as again:
            raise ApplyError(
                f"{label}: the change of {changed} was cut off ({reason}) and could not be undone now "
                f"({str(again).removeprefix(label + ': ')}). The host may hold the new main.cf"
                f"{' and TLS files' if paths else ''} without Postfix having loaded them; {journal.path} records "
                "the change, and the next operation on this host (up, refresh or destroy) undoes it first."
            ) from None
        if not swapped:
            files_back = f" {', '.join(written)} put back as they were;" if written else ""
            raise ApplyError(
                f"{label}: the change of {changed} could not be written: {reason}.{files_back} main.cf was not "
                "changed and Postfix was not reloaded."
            ) from None
        raise ApplyError(
            f"{label}: Postfix failed after the change of {changed}: {reason}. The previous configuration was put "
            f"back{' (the TLS files too)' if written else ''} and Postfix restarted; {outcome}."
        ) from None
    return made


def _undo(
    host: PostfixHost,
    facts: PostfixFacts,
    journal: Journal,
    written: list[str],
    made: list[str],
    swapped: bool,
    failing_before: str | None,
) -> str:
    """Put every file back as it was and end the journal; says how Postfix is doing afterwards."""
    if written:
        host.restore_files(written)
    host.remove_files(made)
    outcome = ""
    if swapped:
        outcome = _after_rollback(_roll_back(host, facts, patient=failing_before is None), failing_before)
    journal.end()
    return outcome


def _after_rollback(answering: bool, failing_before: str | None) -> str:
    if failing_before is None:
        return "it answers SMTP again" if answering else "it does not answer SMTP"
    now = "it answers SMTP now" if answering else "it still does not answer SMTP"
    return (
        f"that configuration was ALREADY FAILING before the change ({failing_before}), so {now}: "
        "fix the cause named above, or the failing setting by hand"
    )


# `postfix reload` only signals the master. Until the master has re-read main.cf, an idle smtpd of
# the old generation could answer the probe; the master logs "reload" once it has. After that line
# every smtpd runs the new configuration: only later log lines judge it.
_RELOAD_MARK = "reload -- version"
_START_MARK = "daemon started -- version"
_MASTER_WAIT_SECONDS = 5.0
_SETTLE_SECONDS = 0.2
_NO_LOG_SETTLE_SECONDS = 1.0


def _failure_before(host: PostfixHost, facts: PostfixFacts, offset: int | None) -> str | None:
    """Why Postfix does not serve before the change (None when it does), as its own probe sees it."""
    try:
        host.probe_smtp(timeout=3.0)
        return None
    except RemoteError as exc:
        reason = str(exc).removeprefix(f"{host.label}: ")
    fatals = host.log_fatals(facts.log_file, offset)
    return reason + (f"; the mail log says: {' | '.join(fatals[-2:])}" if fatals else "")


def _load(host: PostfixHost, facts: PostfixFacts, offset: int | None, failing_before: str | None) -> None:
    """Make the master load the new main.cf: a reload, or a restart when it was not serving."""
    if failing_before is None:
        host.reload()
        _wait_for_master(host, facts, offset, _RELOAD_MARK)
        return
    # A master already throttling smtpd (after some earlier crash) ignores a reload; restart it instead.
    pulumi.log.warn(
        f"{host.label}: Postfix did not answer SMTP before the change ({failing_before}); "
        "restarting it instead of a reload"
    )
    host.restart()
    _wait_for_master(host, facts, offset, _START_MARK)


def _fresh_log(host: PostfixHost, facts: PostfixFacts, offset: int | None, mark: str | None) -> list[str]:
    """Log lines since the master logged `mark` (its last load): what the new configuration caused."""
    lines = host.s.read_appended(facts.log_file, offset)
    if mark is None:
        return lines
    starts = [i for i, line in enumerate(lines) if mark in line]
    return lines[starts[-1] + 1 :] if starts else lines


def _verify(host: PostfixHost, facts: PostfixFacts, offset: int | None, tls_fingerprint: str | None) -> None:
    """Probe SMTP; the mail log's fatal lines since the new configuration was loaded, if any, are the reason."""
    mark = _last_mark(host, facts, offset)

    def fail_on_fatal() -> None:
        fatals = [ln for ln in _fresh_log(host, facts, offset, mark) if _is_fatal(ln)]
        if fatals:
            raise PostfixError(f"{host.label}: smtpd cannot start; the mail log says: " + " | ".join(fatals[-3:]))

    try:
        host.probe_smtp(while_waiting=fail_on_fatal, tls_fingerprint=tls_fingerprint)
    except PostfixError as exc:
        fail_on_fatal()
        warnings = [ln for ln in _fresh_log(host, facts, offset, mark) if "warning:" in ln]
        if warnings:
            raise PostfixError(f"{exc}; the mail log says: " + " | ".join(warnings[-3:])) from None
        raise
    fail_on_fatal()


def _is_fatal(line: str) -> bool:
    return "fatal:" in line or "panic:" in line


def _last_mark(host: PostfixHost, facts: PostfixFacts, offset: int | None) -> str | None:
    lines = host.s.read_appended(facts.log_file, offset)
    found = [m for line in lines for m in (_RELOAD_MARK, _START_MARK) if m in line]
    return found[-1] if found else None


def _wait_for_master(host: PostfixHost, facts: PostfixFacts, offset: int | None, mark: str) -> None:
    if facts.log_file is None or offset is None:
        time.sleep(_NO_LOG_SETTLE_SECONDS)
        return
    deadline = time.monotonic() + _MASTER_WAIT_SECONDS
    while time.monotonic() < deadline:
        if any(mark in line for line in host.s.read_appended(facts.log_file, offset)):
            time.sleep(_SETTLE_SECONDS)
            return
        time.sleep(0.1)
    raise PostfixError(
        f"{host.label}: the Postfix master did not log that it loaded the new main.cf ({mark!r}) within "
        f"{_MASTER_WAIT_SECONDS:.0f} s"
    )


def _answers(host: PostfixHost, timeout: float = 3.0) -> bool:
    try:
        host.probe_smtp(timeout=timeout)
        return True
    except RemoteError:
        return False


def _wait_until_answering(host: PostfixHost, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while not _answers(host):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def _roll_back(host: PostfixHost, facts: PostfixFacts, patient: bool = True) -> bool:
    """Put the previous main.cf back and restart; True when Postfix answers SMTP again.

    A configuration that was failing before the change gets one probe, not a 30 s wait.
    """
    host.swap_in(facts.main_cf, facts.config_directory)
    # A crashed smtpd throttles the service; only stop + start lifts that.
    host.restart()
    return _wait_until_answering(host, 30.0 if patient else 0.0)


class PostfixConfig(dyn.Resource, module="postfix", name="PostfixConfig"):
    """Manage main.cf directives on one host; see README for every field."""

    main_cf: pulumi.Output[dict]
    originals: pulumi.Output[dict]
    overridden: pulumi.Output[dict]
    created_files: pulumi.Output[list]
    postfix_version: pulumi.Output[str]
    compliance: pulumi.Output[dict]

    def __init__(
        self,
        resource_name: str,
        connection: Any,
        limits: Mapping[str, Any] | None = None,
        directives: Mapping[str, Any] | None = None,
        sasl: Mapping[str, Any] | None = None,
        tls: Mapping[str, Any] | None = None,
        tls_key_pem: pulumi.Input[str] | None = None,
        insecure_ignore_host_key: bool = False,
        use_sudo: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ):
        props = {
            **conn.connection_props(connection, insecure_ignore_host_key, use_sudo),
            "limits": dict(limits or {}),
            "directives": dict(directives or {}),
            "sasl": dict(sasl) if sasl else None,
            "tls": dict(tls) if tls else None,
            "tls_key_pem": pulumi.Output.secret(tls_key_pem) if tls_key_pem is not None else None,
            "main_cf": None,
            "originals": None,
            "overridden": None,
            "created_files": None,
            "postfix_version": None,
            "compliance": None,
        }
        super().__init__(PostfixConfigProvider(), resource_name, props, opts)
