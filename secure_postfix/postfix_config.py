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

import datetime as dt
import hashlib
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic as dyn

from secure_postfix import connection as conn
from secure_postfix import postfix_daemon as daemon
from secure_postfix.args import PostfixConfigArgs, SaslWiring, TlsSettings
from secure_postfix.core import compliance, ledger, maincf, tls_policy
from secure_postfix.core import postfix_features as features
from secure_postfix.core import postfix_rules as rules
from secure_postfix.core.certificates import (
    MIN_DAYS_LEFT,
    CertificateError,
    CertificateFacts,
    host_material_problem,
    read_leaf,
    summary_of,
)
from secure_postfix.core.postfix_plan import Plan, live_values, plan_edit, plan_restore
from secure_postfix.core.renewal_hook import HookSpec
from secure_postfix.core.tls_material import certificate_problems
from secure_postfix.provider import (
    ApplyError,
    Change,
    FileJournal,
    HostProvider,
    ledger_from,
    load_ledger,
    run_change,
    save_ledger,
)
from secure_postfix.remote.host_lock import LOCK_FILE
from secure_postfix.remote.postfix_host import BACKUP_SUFFIX, PostfixError, PostfixFacts, PostfixHost
from secure_postfix.remote.ssh import ChangedMeanwhileError, RemoteError, Session

COMPUTED_OUTPUTS = (
    "originals",
    "overridden",
    "created_files",
    "postfix_version",
    "host_values",
    "certificate",
)
# Outputs earlier releases stored: the verdicts (`compliance`), now judged from the stored values where they are
# read (PostfixConfig.compliance, the report, the policy pack). Stored, 28 verdicts per host were most of the state
# and of what the engine sends the provider and logs at every operation. A refresh or an apply drops them.
FORMER_OUTPUTS = ("compliance",)
UPLOADED_PEM = compliance.UPLOADED_PEM
HOOK_DRIFT = " (changed or removed on the host)"


def originals_to_state(originals: Mapping[str, str | None]) -> dict[str, str]:
    """Pulumi drops null map values, so "was absent" is stored as an empty string.

    A recorded definition is never empty: it always holds at least `name =`.
    State holds UTF-8 only; a definition with other bytes is kept exactly, as base64.
    """
    return {name: maincf.definition_to_state(raw) for name, raw in originals.items()}


def originals_from_state(stored: Mapping[str, str] | None) -> dict[str, str | None]:
    return {name: maincf.definition_from_state(raw) for name, raw in (stored or {}).items()}


def earlier_to_state(earlier: Mapping[str, list[tuple[int, str]]]) -> dict[str, list]:
    """Overridden definitions the edit removed: name -> [[base position, exact text], ...]."""
    return {name: [[pos, maincf.definition_to_state(raw)] for pos, raw in items] for name, items in earlier.items()}


def earlier_from_state(stored: Mapping[str, list] | None) -> dict[str, list[tuple[int, str]]]:
    return {
        name: [(int(pos), maincf.definition_from_state(raw) or "") for pos, raw in items]
        for name, items in (stored or {}).items()
    }


# -- check: everything that needs no host -------------------------------------------


def _text(value: Any) -> Any:
    return value if conn.is_unknown(value) else rules.as_text(value)


def fold_main_cf(props: Mapping[str, Any]) -> dict[str, Any]:
    """limits + directives + the sasl and tls blocks, as main.cf text (unknowns kept)."""
    main_cf: dict[str, Any] = {}
    for key in ("limits", "directives"):
        main_cf.update({k: _text(v) for k, v in (props.get(key) or {}).items()})
    if props.get("sasl"):
        sasl = SaslWiring.from_props(props["sasl"]).props()
        main_cf.update({k: _text(v) for k, v in features.sasl_directives(sasl).items()})
    if props.get("tls"):
        main_cf.update(features.tls_directives(TlsSettings.from_props(props["tls"]).props()))
    if props.get("relay_restrictions"):
        main_cf[features.RELAY_DIRECTIVE] = _text(props["relay_restrictions"])
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
    problems += rules.single_value_problems("limits", limits) + rules.single_value_problems("directives", directives)
    relay = props.get("relay_restrictions")
    problems += features.overlapping_directives(directives, sasl, tls, relay)
    if relay is not None and not conn.is_unknown(relay):
        problems += features.relay_problems(relay)
    if sasl:
        problems += features.sasl_problems(SaslWiring.from_props(sasl).props(), tls, conn.is_unknown)
    if tls:
        problems += features.tls_problems(TlsSettings.from_props(tls).props())
        cert, key = tls.get("cert_pem"), props.get("tls_key_pem")
        if tls.get("host_cert_file") is not None:
            if tls.get("host_key_file") is None:
                problems.append(rules.Problem("tls.host_key_file", "is required with host_cert_file: its key's path"))
            if key:
                problems.append(
                    rules.Problem("tls_key_pem", "goes with cert_pem; with host_cert_file the key stays on the host")
                )
        elif not key:
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
    # Stored only when it is not the default, so a public MX's inputs carry no line for it.
    if tls.get("public_mx") is False:
        inputs["public_mx"] = False
    if tls:
        inputs.update(_tls_inputs(tls, props.get("tls_key_pem")))
    # The per-destination table's text, deployed beside the pair file; absent without destinations.
    inputs["tls_policy_map"] = features.tls_policy_map(TlsSettings.from_props(tls).props()) if tls else None
    return {k: v for k, v in inputs.items() if v is not None}


def _tls_inputs(tls: Mapping[str, Any], key: Any) -> dict[str, Any]:
    """Where the certificate comes from, as the engine stores and diffs it.

    An uploaded PEM's diff is hidden (PostfixConfig's `hide_diffs`): `tls_certificate`, one line (its expiry, names
    and fingerprint), stands for it, so a new certificate reads as old expiry => new expiry. A certificate on the
    host is named by its paths: a renewal there changes no input.
    """
    settings = TlsSettings.from_props(tls)
    inputs: dict[str, Any] = {}
    if settings.host_cert_file is not None:
        inputs["tls_host_cert_file"] = settings.host_cert_file
        inputs["tls_host_key_file"] = settings.host_key_file
        inputs["tls_renewal_hook"] = settings.renewal_hook
    else:
        cert = tls.get("cert_pem")
        inputs[UPLOADED_PEM] = cert
        inputs["tls_certificate"] = summary_of(cert) if isinstance(cert, str) and cert else cert
        inputs["tls_key_pem"] = key
    if settings.min_days_left != MIN_DAYS_LEFT:
        inputs[compliance.MIN_DAYS_KEY] = settings.min_days_left
    return inputs


def uploaded_pem(props: Mapping[str, Any]) -> str | None:
    """The PEM chain to upload."""
    cert = props.get(UPLOADED_PEM)
    return cert if isinstance(cert, str) and cert else None


@dataclass(frozen=True)
class OnHost:
    """A certificate and key that live on the host, and where the renewal hook goes."""

    cert_file: str
    key_file: str
    hook: str

    @classmethod
    def of(cls, props: Mapping[str, Any]) -> OnHost | None:
        cert, key = props.get("tls_host_cert_file"), props.get("tls_host_key_file")
        if not cert or not key:
            return None
        hook = str(props.get("tls_renewal_hook") or "").removesuffix(HOOK_DRIFT)
        return cls(str(cert), str(key), hook or TlsSettings.renewal_hook)

    def hook_text(self, host: PostfixHost) -> str:
        spec = HookSpec(self.cert_file, self.key_file, features.TLS_PAIR_FILE, host.smtp.address, host.smtp.port)
        return spec.render()


@dataclass(frozen=True)
class PairFromHost:
    """The pair file, built on the host from its own certificate and key (only the pair whose digest was checked)."""

    cert_file: str
    key_file: str
    sha256: str


def judged_inputs(tls: TlsSettings | None) -> dict[str, Any]:
    """What the verdicts read besides the stored values: the scope, the days a certificate must still be valid
    for, and the PEM to upload (judged until up has read the one served)."""
    if tls is None:
        return {}
    return {"public_mx": tls.public_mx, compliance.MIN_DAYS_KEY: tls.min_days_left, UPLOADED_PEM: tls.cert_pem}


def served_certificate(host: PostfixHost, facts: PostfixFacts) -> dict[str, str]:
    """The leaf of the chain main.cf's smtpd_tls_cert_file names on the host, as the `certificate` output
    ({} when there is none to read)."""
    path = live_values(facts.main_cf, ["smtpd_tls_cert_file"]).get("smtpd_tls_cert_file") or ""
    path = path.strip()
    if not path.startswith("/") or "$" in path:
        return {}
    try:
        return read_leaf(host.certificate_blocks(path)).record()
    except CertificateError:
        return {}


def host_values(main_cf_text: str, managed: Iterable[str]) -> dict[str, str]:
    """The host's own values of the names the rules read and the stack leaves alone ("" where main.cf has none).

    Kept as an output, so that a report from state judges partners such as message_size_limit on them.
    """
    names = [n for n in compliance.HOST_NAMES if n not in set(managed)]
    return {n: "" if v is None else maincf.printable(v) for n, v in live_values(main_cf_text, names).items()}


# -- the provider ----------------------------------------------------------------------


class PostfixConfigProvider(HostProvider):
    resource = "PostfixConfig"
    id_prefix = "postfix"
    computed = (*COMPUTED_OUTPUTS, *FORMER_OUTPUTS)
    refresh_locks = True

    problems = staticmethod(check_props)
    inputs = staticmethod(checked_inputs)

    def apply(self, session: Session, id_: str, props: dict[str, Any], olds: Mapping[str, Any] | None) -> dict:
        old_hook = OnHost.of(olds or {})
        return self._apply(session, id_, props, Holdings.from_state(olds or {}), old_hook.hook if old_hook else None)

    def refresh(self, session: Session, id_: str, props: dict[str, Any]) -> dict[str, Any]:
        host = PostfixHost(session)
        facts = host.facts()
        journal = Journal.load(session, host, facts, id_)
        # A change cut off half way is undone first, so refresh reads what Postfix really runs.
        return self._refreshed(host, journal.resolve(facts), props)

    def refresh_unlocked(self, session: Session, id_: str, props: dict[str, Any]) -> dict[str, Any] | None:
        # Without TLS or a renewal hook everything a refresh reads comes with the facts, read under a shared lock:
        # no apply changes the host meanwhile, and the host's lock (a channel and a process held for the whole
        # refresh) is taken only when an apply holds it, or a change left half done or its backups need undoing.
        if features.uses_tls_block(props) or OnHost.of(props) is not None:
            return None
        host = PostfixHost(session)
        facts = host.facts_unless_busy(LOCK_FILE, plans=False)
        if facts is None or not facts.ledger_read or facts.backed_up:
            return None
        if Journal.load(session, host, facts, id_).book.pending:
            return None
        return self._refreshed(host, facts, props)

    def _refreshed(self, host: PostfixHost, facts: PostfixFacts, props: dict[str, Any]) -> dict[str, Any]:
        declared = {k: str(v) for k, v in (props.get("main_cf") or {}).items()}
        live = live_values(facts.main_cf, declared)
        # Pulumi drops null map values; an absent directive reads as "" so the drift still shows.
        found = {k: "" if v is None else maincf.printable(v) for k, v in live.items()}
        refreshed = {
            **{k: v for k, v in props.items() if k not in FORMER_OUTPUTS},
            "main_cf": features.as_declared(found, declared, facts.version, features.uses_tls_block(props)),
            # The version as the host reports it now: the next preview judges the stack against it.
            "postfix_version": facts.version,
        }
        refreshed["host_values"] = host_values(facts.main_cf, live)
        if features.uses_tls_block(props):
            # What Postfix serves now: after a renewal on the host, the new certificate, with no input changed.
            refreshed["certificate"] = served_certificate(host, facts)
        on_host = OnHost.of(props)
        if on_host is not None:
            # A renewal hook changed or removed on the host would let the next renewal pass Postfix by: one line.
            digest = host.file_digests([on_host.hook]).get(on_host.hook)
            if digest != _sha256(on_host.hook_text(host)):
                refreshed["tls_renewal_hook"] = on_host.hook + HOOK_DRIFT
        return refreshed

    def preview_problems(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
        """The Postfix version the last up or refresh read from the host, judged against the new main_cf."""
        return [str(p) for p in version_problems_of(olds.get("postfix_version"), news)]

    def remove(self, session: Session, id_: str, props: dict[str, Any]) -> None:
        host = PostfixHost(session)
        facts = host.facts()
        journal = Journal.load(session, host, facts, id_)
        facts = journal.resolve(facts)
        book = journal.book
        mine = Holdings.from_state(props).merged_with(book, id_)
        # What another resource still declares stays as it is: that one gives it back.
        others = book.declared_by_others(id_)
        names = [n for n in mine.originals if ledger.directive_key(n) not in others]
        plan = plan_restore(
            facts.main_cf,
            {n: mine.originals[n] for n in names},
            {n: mine.earlier[n] for n in names if n in mine.earlier},
        )
        if not plan.empty:
            run_change(MainCfChange(host, facts, plan, files={}, tls_fingerprint=None, journal=journal))
        created = [p for p in mine.created if ledger.path_key(p) not in others]
        if created:
            host.remove_files(created)
            pulumi.log.info(f"{host.label}: removed {', '.join(created)}")
        book.release(id_)
        journal.commit(plan.changes, "restored")

    # -- the apply -------------------------------------------------------------
    def _apply(
        self, session: Session, id_: str, props: dict[str, Any], before: Holdings, old_hook: str | None = None
    ) -> dict:
        desired = {k: str(v) for k, v in (props.get("main_cf") or {}).items()}
        files = _tls_files(props)
        cert = uploaded_pem(props)
        on_host = OnHost.of(props)
        host = PostfixHost(session)
        facts = host.facts()
        journal = Journal.load(session, host, facts, id_)
        facts = journal.resolve(facts)
        book = journal.book
        desired = features.for_version(desired, facts.version, features.uses_tls_block(props))
        _check_on_host(host.label, desired, facts)
        pair: PairFromHost | None = None
        leaf = read_leaf(cert) if cert else None
        if on_host is not None:
            pair, leaf = _checked_on_host(host, on_host)
            files[on_host.hook] = (on_host.hook_text(host), "0700")
        paths = [*files, *([features.TLS_PAIR_FILE] if pair else [])]
        declared = [*paths, *sorted({p.rsplit("/", 1)[0] + "/" for p in paths})]
        mine = before.merged_with(book, id_, desired, declared)
        others = book.declared_by_others(id_)
        # A name this resource leaves that another still declares is not given back here.
        known = {n: r for n, r in mine.originals.items() if n in desired or ledger.directive_key(n) not in others}
        plan = plan_edit(facts.main_cf, desired, known, {n: e for n, e in mine.earlier.items() if n in known})
        _check_sasl_endpoint(host, facts, plan)
        digests = host.file_digests(paths) if paths else {}
        changed_files = {p: f for p, f in files.items() if digests.get(p) != _sha256(f[0])}
        if pair is not None and digests.get(features.TLS_PAIR_FILE) == pair.sha256:
            pair = None
        changed = [*changed_files, *([features.TLS_PAIR_FILE] if pair else [])]
        created = sorted(set(mine.created) | {p for p in changed if digests.get(p) is None})
        for file_path in changed:
            pulumi.log.info(f"{host.label}: deploying {file_path}")
        if not plan.empty or changed:
            tls_fingerprint = leaf.fingerprint if leaf else None
            change = MainCfChange(host, facts, plan, changed_files, tls_fingerprint, journal, pair)
            run_change(change)
            created = sorted(set(created) | set(change.made))
        # An earlier release's separate certificate and key, and a per-destination table the stack no longer has:
        # nothing names them once the change is live.
        legacy = [p for p in created if p in features.LEGACY_TLS_FILES] if paths else []
        legacy += [p for p in created if p == tls_policy.POLICY_MAP_FILE and p not in files]
        # A renewal hook this resource installed elsewhere before (or before the certificate was uploaded instead):
        # left there, it would build the pair from the host's files again at the next renewal.
        if old_hook and old_hook not in files and old_hook in created:
            legacy.append(old_hook)
        if legacy:
            host.remove_files(legacy)
            pulumi.log.info(f"{host.label}: removed {', '.join(legacy)}, which main.cf no longer names")
            created = [p for p in created if p not in legacy]
        held = Holdings(plan.originals, plan.earlier, created)
        book.claim(id_, held.keys(declared), held.ledger_originals(declared))
        journal.commit(plan.changes, "changed")
        return {
            **props,
            "originals": originals_to_state(plan.originals),
            "overridden": earlier_to_state(plan.earlier),
            "created_files": created,
            "postfix_version": facts.version,
            "host_values": host_values(facts.main_cf, desired),
            "certificate": leaf.record() if leaf else {},
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


@dataclass
class Journal:
    """The ledger on one host, with the change under way recorded in it (`pending`).

    Written before the first byte of a change lands (main.cf and TLS files backed up beside
    themselves), cleared with the same write that records the result. If the link or the
    controller dies in between, the next operation on the host finds the record and undoes the
    change (backups back, Postfix reloaded), so that file, daemon and state agree again.
    """

    session: Session
    host: PostfixHost
    path: str
    main_cf: str
    book: ledger.Ledger
    owner: str

    @classmethod
    def load(cls, session: Session, host: PostfixHost, facts: PostfixFacts, owner: str) -> Journal:
        path = ledger_path(facts.config_directory)
        main_cf = posixpath.join(facts.config_directory, "main.cf")
        if facts.ledger_read:  # read with the facts, under the same lock: no round trip of its own
            data = None if facts.ledger is None else maincf.encode(facts.ledger)
            book = ledger_from(host.label, path, data)
        else:
            book = load_ledger(session, path)
        return cls(session, host, path, main_cf, book, owner)

    def begin(self, facts: PostfixFacts, new_text: str, files: list[str], made: list[str]) -> None:
        """Record the change as pending, with main.cf and `files` backed up beside themselves: one round trip,
        which first makes sure main.cf is still the file `facts` read (ChangedMeanwhileError, nothing written)."""
        self.book.pending = {
            "owner": self.owner,
            "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "before": facts.main_cf_sha256 or "",
            "after": hashlib.sha256(maincf.encode(new_text)).hexdigest(),
            "files": files,
            "made": made,
        }
        try:
            self.host.begin_change(facts, [self.main_cf, *files], self.path, self.book.render())
        except RemoteError:
            self.book.pending = None
            raise

    def end(self) -> None:
        """The change is over (applied, or rolled back): forget it, drop the backups (one round trip)."""
        pending, self.book.pending = self.book.pending, None
        backups = [self.main_cf, *pending.get("files", [])] if pending else []
        self.host.end_change(self.path, None if self.book.empty else self.book.render(), backups)

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
        if pending and pending.get("path"):
            return self._resolve_master_cf(facts)
        if not pending:
            # Backups outlive a change cut off after its record was cleared, before they were removed. Facts that
            # came with the ledger say which there are: mostly none, and then no command is needed.
            every = [self.main_cf, features.TLS_PAIR_FILE, tls_policy.POLICY_MAP_FILE]
            leftovers = list(facts.backed_up) if facts.ledger_read else every
            if leftovers:
                self.host.drop_backups(leftovers)
            return facts
        label, started = self.host.label, pending.get("started", "?")
        if facts.main_cf_sha256 not in (pending.get("before"), pending.get("after")):
            raise ApplyError(
                f"{label}: an apply started at {started} was cut off, and {self.main_cf} was changed since by "
                f"something else; its content before that apply is in {self.main_cf}{BACKUP_SUFFIX}. Put main.cf "
                f'right by hand, then remove the "pending" entry from {self.path}. Nothing was changed.'
            )
        self.host.put_back_backup(self.main_cf)
        files = list(pending.get("files", []))
        if files:
            self.host.restore_files(files)
        self.host.remove_files(list(pending.get("made", [])))
        restored = self.host.facts()
        offset = self.host.log_size(restored.log_file)
        daemon.load(self.host, restored, offset, daemon.failure_before(self.host, restored, offset))
        self.book.pending = None
        save_ledger(self.session, self.path, self.book)
        pulumi.log.warn(
            f"{label}: an apply started at {started} was cut off before it finished; it was undone first "
            "(main.cf and TLS files as they were before it, Postfix reloaded)"
        )
        return restored

    def master_cf_journal(self, facts: PostfixFacts) -> FileJournal:
        """The record of a change of master.cf (PostfixServices), in the same ledger."""
        path = posixpath.join(facts.config_directory, "master.cf")
        return FileJournal(self.session, self.path, self.book, self.host.label, path)

    def _resolve_master_cf(self, facts: PostfixFacts) -> PostfixFacts:
        journal = self.master_cf_journal(facts)
        if not journal.mine():
            raise ApplyError(
                f"{self.host.label}: {self.path} records a change of {self.book.pending.get('path')} under way, a "
                'file this release does not change; mend or remove the "pending" entry by hand. Nothing was changed.'
            )

        def put_back(text: str | None) -> None:
            self.host.swap_in_master(text or "", facts.config_directory)

        def reload() -> None:
            offset = self.host.log_size(facts.log_file)
            daemon.load(self.host, facts, offset, daemon.failure_before(self.host, facts, offset))

        journal.resolve(self.host.read_master_cf(facts.config_directory), put_back, reload, "Postfix")
        return self.host.facts()


def _checked_on_host(host: PostfixHost, on_host: OnHost) -> tuple[PairFromHost, CertificateFacts]:
    """The host's certificate and key, checked there (they belong together, the certificate is in date) before
    anything is written; the key never leaves the host."""
    material = host.host_material(on_host.cert_file, on_host.key_file)
    problem = host_material_problem(material, on_host.cert_file, on_host.key_file)
    if problem is None:
        try:
            leaf = read_leaf(material.chain)
        except CertificateError as why:
            problem = f"tls.host_cert_file: {on_host.cert_file} {why}"
        else:
            if leaf.days_left() < 0:
                problem = f"tls.host_cert_file: the certificate in {on_host.cert_file} expired on {leaf.expiry()}"
    if problem is not None:
        raise ApplyError(f"{host.label}: {problem}. Nothing was changed.")
    return PairFromHost(on_host.cert_file, on_host.key_file, material.pair_sha256), leaf


def _tls_files(props: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """path -> (content, mode) of the files the tls block deploys: the key and its certificate chain, one file."""
    cert, key = uploaded_pem(props), props.get("tls_key_pem")
    files = {}
    if cert and key:
        files[features.TLS_PAIR_FILE] = (key.rstrip("\n") + "\n" + cert.rstrip("\n") + "\n", "0600")
    # The per-destination table goes with either source of the certificate (uploaded, or on the host).
    policy_map = props.get("tls_policy_map")
    if policy_map:
        files[tls_policy.POLICY_MAP_FILE] = (policy_map, "0644")
    return files


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def version_problems_of(version: Any, props: Mapping[str, Any]) -> list[rules.Problem]:
    """What the stored inputs `props` ask that Postfix `version` cannot read, as it will be written there
    (rendered for that version); [] while the version is not known yet."""
    main_cf = props.get("main_cf")
    if not isinstance(version, str) or not version or not isinstance(main_cf, Mapping):
        return []
    known = {k: str(v) for k, v in main_cf.items() if not conn.is_unknown(v)}
    rendered = features.for_version(known, version, features.uses_tls_block(props))
    return rules.version_problems(rendered, version) + rules.parameter_problems(main_cf, version)


def _check_on_host(label: str, desired: Mapping[str, str], facts: PostfixFacts) -> None:
    """The rules again, now with the host's own parameter list and its unmanaged limits; `desired` as rendered for
    the host's version (features.for_version)."""
    if facts.parameters is None:
        raise RuntimeError(f"{label}: a change was checked against facts read for a refresh, which lack the names")
    problems = rules.check_directives(desired, known=facts.parameters, postfix=f"Postfix {facts.version}")
    if not problems:
        current = live_values(facts.main_cf, rules.POSTFIX_DEFAULTS)
        effective = {k: v for k, v in current.items() if v is not None and v.isdigit()}
        effective.update({k: v for k, v in desired.items() if k in rules.POSTFIX_DEFAULTS})
        problems = rules.check_cross_fields(effective)
    problems += rules.version_problems(desired, facts.version)
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


class MainCfChange(Change):
    """main.cf and the TLS files it names, as one transaction: all new, or all as they were.

    The journal holds the change as pending from before its first byte lands; on success the
    caller's `journal.commit` records the result and ends it in one write.
    """

    daemon = "Postfix"
    refusal = PostfixError

    def __init__(
        self,
        host: PostfixHost,
        facts: PostfixFacts,
        plan: Plan,
        files: Mapping[str, tuple[str, str]],
        tls_fingerprint: str | None,
        journal: Journal,
        pair: PairFromHost | None = None,
    ):
        self.host, self.facts, self.plan, self.files = host, facts, plan, files
        self.tls_fingerprint, self.journal, self.pair = tls_fingerprint, journal, pair
        self.label = host.label
        self.paths = [*files, *([features.TLS_PAIR_FILE] if pair else [])]
        self.changed = ", ".join([c.name for c in plan.changes] + self.paths) or "nothing"
        self.made: list[str] = []  # directories created, as "path/"
        self.written: list[str] = []
        self.offset: int | None = None
        self.failing_before: str | None = None

    def check_staged(self) -> None:
        # The mail log's size comes with the check's report: the offset the reload's verdict reads from.
        self.offset = self.host.check_staged(
            self.plan.text,
            self.facts.config_directory,
            self.plan.restored_duplicates,
            self.facts.log_file,
            live=self.facts.main_cf,
        )
        table = self.files.get(tls_policy.POLICY_MAP_FILE)
        if table is not None:
            self.host.check_staged_table(table[0], tls_policy.POLICY_MAP_FILE)

    def refused(self, exc: Exception) -> Exception:
        return ApplyError(f"{exc} (changed: {self.changed}). Nothing was changed.")

    def prepare(self) -> None:
        host, facts = self.host, self.facts
        if self.offset is None:
            self.offset = host.log_size(facts.log_file)
        self.failing_before = daemon.failure_before(host, facts, self.offset)
        for directory in sorted({p.rsplit("/", 1)[0] for p in self.paths}):
            if host.ensure_directory(directory):
                self.made.append(directory + "/")
        try:
            self.journal.begin(facts, self.plan.text, self.paths, self.made)
        except ChangedMeanwhileError:
            host.remove_files(self.made)  # the folder made a moment ago: nothing is left of this change
            raise

    def swap(self) -> None:
        # A file whose write failed is as it was (each write is one rename): only written ones are put back.
        if self.pair is not None:
            pair = self.pair
            self.host.assemble_pair(features.TLS_PAIR_FILE, pair.key_file, pair.cert_file, pair.sha256)
            self.written.append(features.TLS_PAIR_FILE)
        for path, (content, mode) in self.files.items():
            self.host.write_file(path, content, mode)
            self.written.append(path)
        self.host.swap_in(self.plan.text, self.facts.config_directory, expect_sha256=self.facts.main_cf_sha256)

    def load(self) -> None:
        daemon.load(self.host, self.facts, self.offset, self.failing_before)

    def verify(self) -> None:
        daemon.verify(self.host, self.facts, self.offset, self.tls_fingerprint)

    def roll_back(self, swapped: bool) -> str:
        """Every file back as it was, the journal ended; says how Postfix is doing afterwards."""
        host = self.host
        if self.written:
            host.restore_files(self.written)
        host.remove_files(self.made)
        outcome = ""
        if swapped:
            host.swap_in(self.facts.main_cf, self.facts.config_directory)
            answering = daemon.restart_until_answering(host, patient=self.failing_before is None)
            outcome = daemon.after_rollback(answering, self.failing_before)
        self.journal.end()
        return (
            f"The previous configuration was put back{' (the TLS files too)' if self.written else ''} and Postfix "
            f"restarted; {outcome}"
        )

    def not_written(self, reason: str, exc: Exception) -> Exception:
        files_back = f" {', '.join(self.written)} put back as they were;" if self.written else ""
        return ApplyError(
            f"{self.label}: the change of {self.changed} could not be written: {reason}.{files_back} main.cf was not "
            "changed and Postfix was not reloaded."
        )

    def not_undone(self, reason: str, again: RemoteError) -> Exception:
        return ApplyError(
            f"{self.label}: the change of {self.changed} was cut off ({reason}) and could not be undone now "
            f"({str(again).removeprefix(self.label + ': ')}). The host may hold the new main.cf"
            f"{' and TLS files' if self.paths else ''} without Postfix having loaded them; {self.journal.path} "
            "records the change, and the next operation on this host (up, refresh or destroy) undoes it first."
        )


class PostfixConfig(dyn.Resource, module="postfix", name="PostfixConfig"):
    """main.cf directives on one host: the guide's DoS limits, SMTP AUTH through Dovecot, TLS, and any other
    parameter. Each apply checks a staged copy, swaps it in atomically, reloads, probes as a client, and puts
    the previous files back on any failure; destroy gives every directive its original back."""

    main_cf: pulumi.Output[dict]
    originals: pulumi.Output[dict]
    overridden: pulumi.Output[dict]
    created_files: pulumi.Output[list]
    postfix_version: pulumi.Output[str]
    host_values: pulumi.Output[dict]
    certificate: pulumi.Output[dict]
    """The certificate Postfix serves (subject, sans, issuer, not_after, fingerprint), read at up and refresh."""

    def __init__(self, resource_name: str, args: PostfixConfigArgs, opts: pulumi.ResourceOptions | None = None):
        outputs = ("main_cf", *COMPUTED_OUTPUTS)
        props = {**args.props(), **dict.fromkeys(outputs)}
        # A new certificate's PEM would fill a preview line by line; `tls_certificate` says it in one line.
        hidden = pulumi.ResourceOptions(hide_diffs=[UPLOADED_PEM])
        super().__init__(PostfixConfigProvider(), resource_name, props, pulumi.ResourceOptions.merge(hidden, opts))
        self._judged_inputs = judged_inputs(args.tls)

    @property
    def compliance(self) -> pulumi.Output[dict]:
        """Rule ID -> "status: value seen" (compliance.md lists the rules), judged by this release's rules on
        what the last up or refresh stored: main_cf, the host's own values of what the stack leaves alone, and
        the certificate served. Judged here, not kept in state, as `python -m compliance` and the policy pack
        judge; nothing is computed unless it is read."""
        stored = pulumi.Output.all(main_cf=self.main_cf, host_values=self.host_values, certificate=self.certificate)
        inputs = pulumi.Output.from_input(self._judged_inputs)
        return pulumi.Output.all(stored, inputs).apply(lambda both: compliance.report_of_props({**both[1], **both[0]}))
