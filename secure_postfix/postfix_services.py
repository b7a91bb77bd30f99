"""PostfixServices: the submission services of master.cf (587 STARTTLS, 465 TLS from the first byte) on one host.

It owns only its own entries of master.cf, each shown as one line in the diff (`master_cf`),
and leaves every other byte of the file alone. Entries are grouped as Postfix groups them, and
refresh compares what Postfix itself reads (`postconf -M`). Apply: plan the edit -> `postconf -M`,
`postconf -n` and `postfix check` with a staged copy in place of the live file (each managed entry
must read back as written) -> atomic swap (only if the file is
still the one read) -> `postfix reload` -> probe port 25 and every managed listener
(STARTTLS or implicit TLS with the deployed certificate, TLS 1.2+) -> on any failure the
previous master.cf goes back and Postfix is restarted. The text each entry had before is
kept in state; destroy gives it back (or removes the entry), byte for byte.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import pulumi
import pulumi.dynamic as dyn

from secure_postfix import connection as conn
from secure_postfix import postfix_daemon as daemon
from secure_postfix.args import PostfixServicesArgs
from secure_postfix.core import ledger, mastercf, smtp_endpoint
from secure_postfix.core.problem import Problem
from secure_postfix.postfix_config import Journal, served_certificate
from secure_postfix.provider import ApplyError, Change, FileJournal, HostProvider, run_change, save_ledger
from secure_postfix.remote.postfix_host import PostfixError, PostfixFacts, PostfixHost
from secure_postfix.remote.ssh import RemoteError, Session

# `master_cf` (the rendered entries) is computed: as an input it would restate every changed option.
# `postfix_version` is what the last up or refresh read from the host: the next preview judges the options by it.
COMPUTED_OUTPUTS = ("originals", "master_cf", "postfix_version")
DRIFT = "drift"


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
    if not props.get("tls_cert_pem") and not props.get("tls_host_cert_file"):
        problems.append(Problem("tls_cert_pem", "is required: the submission services need TLS (PostfixConfig tls)"))
    return problems + mastercf.service_problems(services_from(props))


def desired_entries(props: Mapping[str, Any]) -> dict[str, str]:
    return {s.key: mastercf.render(s) for s in services_from(props).values()}


def checked_inputs(props: Mapping[str, Any]) -> dict[str, Any]:
    """The connection and the services: the rendered entries are an output (they would restate every changed
    option in the diff), and a hand edit comes back as the `drift` input. The certificate is not stored: the
    probe expects the one Postfix serves (read from the host), so a new certificate is a line of PostfixConfig's
    preview alone."""
    inputs = {k: props.get(k) for k in (*conn.CONNECTION_FIELDS, *conn.OPTION_FIELDS, "services")}
    return {k: v for k, v in inputs.items() if v is not None}


def desired_lines(props: Mapping[str, Any]) -> dict[str, str]:
    """Each managed entry as one line, as the output `master_cf` shows it."""
    return {k: mastercf.one_line(t) for k, t in desired_entries(props).items()}


def _meaning(line: str | None) -> tuple[list[str], list[str]] | None:
    """An entry's fields and its set of `-o` overrides: state hands the options back in another order."""
    if line is None:
        return None
    tokens = line.split()
    head, rest = tokens[:8], tokens[8:]
    return head, sorted(" ".join(rest[i : i + 2]) for i in range(0, len(rest), 2))


def drift_of(live_text: str, desired: Mapping[str, str]) -> dict[str, str]:
    """Each managed entry Postfix does not read as the stack says, and how it differs there (short enough
    for a diff line: the engine's display cuts long values). `live_text` is master.cf as Postfix reads it
    (`postconf -M`), so an override that Postfix joins to the entry shows, wherever it stands in the file."""
    live = {e.key: mastercf.one_line(e.text) for e in mastercf.parse(live_text)}
    drift = {}
    for key, line in desired.items():
        have, want = _meaning(live.get(key)), _meaning(line)
        if have == want:
            continue
        if have is None or want is None:
            drift[key] = "absent on the host"
            continue
        parts = [f"fields {' '.join(have[0])} (the stack: {' '.join(want[0])})"] if have[0] != want[0] else []
        extra, missing = [o for o in have[1] if o not in want[1]], [o for o in want[1] if o not in have[1]]
        parts += [f"on the host only: {' '.join(extra)}"] if extra else []
        parts += [f"missing on the host: {' '.join(missing)}"] if missing else []
        drift[key] = "; ".join(parts)
    return drift


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

    # A refresh may have to undo a change cut off half way: it holds the host's lock.
    refresh_locks = True

    problems = staticmethod(check_props)
    inputs = staticmethod(checked_inputs)

    def refresh(self, session: Session, id_: str, props: dict[str, Any]) -> dict[str, Any]:
        host = PostfixHost(session)
        facts, _ = _settled(session, host, id_)
        text = host.master_cf_as_read(facts.config_directory)
        desired = desired_lines(props)
        refreshed = {k: v for k, v in props.items() if k != DRIFT}
        refreshed["master_cf"] = desired
        refreshed["postfix_version"] = facts.version
        drift = drift_of(text, desired)
        if drift:
            refreshed[DRIFT] = drift
        return refreshed

    def remove(self, session: Session, id_: str, props: dict[str, Any]) -> None:
        host = PostfixHost(session)
        facts, journal = _settled(session, host, id_)
        book = journal.book
        current = _read_master(host, facts.config_directory)
        # An entry another resource still declares (a hand-over) stays: that one gives it back.
        others = book.declared_by_others(id_)
        originals = first_originals(book, id_, _originals_from_state(props.get("originals")))
        plan = mastercf.plan_restore(
            current, {k: v for k, v in originals.items() if ledger.service_key(k) not in others}
        )
        book.release(id_)
        if not plan.changes:
            save_ledger(session, journal.path, book)
            return
        _log(host.label, plan.changes, "restoring")
        record = journal.master_cf_journal(facts)
        run_change(MasterCfChange(host, facts, current, plan.text, {}, None, record, id_))
        _end(host, record)

    def apply(self, session: Session, id_: str, props: dict[str, Any], olds: Mapping[str, Any] | None) -> dict:
        services = services_from(props)
        host = PostfixHost(session)
        facts, journal = _settled(session, host, id_)
        book = journal.book
        current = _read_master(host, facts.config_directory)
        problems = mastercf.clash_problems(services, current) + mastercf.version_problems(services, facts.version)
        if problems:
            raise ApplyError(f"{host.label}: " + "; ".join(map(str, problems)) + ". Nothing was changed.")
        desired = desired_entries(props)
        originals = first_originals(book, id_, _originals_from_state((olds or {}).get("originals")), desired)
        # An entry this resource no longer declares but another does is not given back here.
        others = book.declared_by_others(id_)
        known = {k: v for k, v in originals.items() if k in desired or ledger.service_key(k) not in others}
        plan = mastercf.plan_edit(current, desired, known)
        if plan.changes:
            _log(host.label, plan.changes, "setting")
            served = served_certificate(host, facts)
            tls_fingerprint = served.get("fingerprint") or None
            record = journal.master_cf_journal(facts)
            run_change(MasterCfChange(host, facts, current, plan.text, services, tls_fingerprint, record, id_))
            # Claimed once the change is live, in the write that ends its record: a change that failed (a create
            # the engine never records) leaves no owner behind to hold the entries after the resource is gone.
            _claim(book, id_, plan.originals)
            _end(host, record)
        else:
            before = book.render()
            _claim(book, id_, plan.originals)
            if book.render() != before:
                save_ledger(session, journal.path, book)
        return {
            **props,
            "master_cf": desired_lines(props),
            "originals": _originals_to_state(plan.originals),
            "postfix_version": facts.version,
        }

    def preview_problems(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
        """The services' options judged on the Postfix version the last up or refresh read from the host."""
        version = olds.get("postfix_version")
        if not isinstance(version, str) or not version or conn.is_unknown(news.get("services")):
            return []
        return [str(p) for p in mastercf.version_problems(services_from(news), version)]


def _claim(book: ledger.Ledger, owner: str, originals: Mapping[str, str | None]) -> None:
    book.claim(
        owner,
        [ledger.service_key(k) for k in originals],
        {ledger.service_key(k): {"text": v} for k, v in originals.items()},
    )


def first_originals(
    book: ledger.Ledger, owner: str, from_state: Mapping[str, str | None], desired: Iterable[str] = ()
) -> dict[str, str | None]:
    """Each entry's text before any resource of this project touched it: the host's ledger wins over this
    resource's state, which after a hand-over (a rename, a site that grew, a new SSH port) holds the text the
    other resource wrote."""
    owned = [ledger.key_name(k) for k in book.owners.get(owner, []) if k.startswith("master.cf:")]
    originals = dict(from_state)
    for key in {*from_state, *desired, *owned}:
        first = book.originals.get(ledger.service_key(key))
        if first is not None:
            originals[key] = first.get("text")
    return originals


def _settled(session: Session, host: PostfixHost, owner: str) -> tuple[PostfixFacts, Journal]:
    """The host's facts once a change an earlier operation left half done (of main.cf or master.cf) is undone."""
    facts = host.facts()
    journal = Journal.load(session, host, facts, owner)
    return journal.resolve(facts), journal


def _end(host: PostfixHost, record: FileJournal) -> None:
    """The change is live: its record goes. Past the point of no return, so a failure says so."""
    try:
        record.end()
    except RemoteError as exc:
        raise ApplyError(
            f"{host.label}: master.cf was changed and Postfix reloaded, but recording it on the host "
            f"({record.ledger_path}) failed: {str(exc).removeprefix(host.label + ': ')}. The next operation on this "
            "host reconciles it (undoes it, and `up` applies it again)."
        ) from None


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
        journal: FileJournal,
        owner: str,
    ):
        self.host, self.facts, self.current, self.text = host, facts, current, text
        self.services, self.tls_fingerprint = services, tls_fingerprint
        self.journal, self.owner = journal, owner
        self.label = host.label
        self.offset: int | None = None

    def check_staged(self) -> None:
        as_read = self.host.check_staged_master(self.text, self.facts.config_directory)
        # Each managed entry must be, as Postfix reads it, the entry written: what state and the probe vouch for.
        wanted = {s.key: mastercf.one_line(mastercf.render(s)) for s in self.services.values()}
        for key, how in drift_of(as_read, wanted).items():
            raise PostfixError(
                f"{self.label}: Postfix would read master.cf's {key} otherwise than it was written ({how})"
            )

    def prepare(self) -> None:
        self.offset = self.host.log_size(self.facts.log_file)
        # From here until the change is over, the next contact with the host undoes it if it is cut off.
        self.journal.begin(self.owner, self.current, self.text)

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
            self.journal.end()
            return ""
        self.host.swap_in_master(self.current, self.facts.config_directory)
        state = "it answers SMTP again" if daemon.restart_until_answering(self.host) else "it does not answer SMTP"
        self.journal.end()
        return f"The previous master.cf was put back and Postfix restarted; {state}"

    def not_undone(self, reason: str, again: RemoteError) -> Exception:
        return ApplyError(
            f"{self.label}: the change of master.cf was cut off ({reason}) and could not be undone now "
            f"({str(again).removeprefix(self.label + ': ')}). {self.journal.ledger_path} records the change, and "
            "the next operation on this host (up, refresh or destroy) undoes it first."
        )


def _probe(host: PostfixHost, services: Mapping[str, mastercf.Service], tls_fingerprint: str | None) -> None:
    """Port 25 still answers, and every managed listener speaks SMTP the way its type says."""
    host.probe_smtp()
    for label, service in services.items():
        # Where Postfix listens for it: its own address, or inet_interfaces'.
        at = smtp_endpoint.service_endpoint(service.name, host.listen_address)
        address, port = (at.address, at.port) if at else (host.listen_address, 0)
        try:
            if service.type == "submissions" and tls_fingerprint:
                host.probe_implicit_tls(address, port, tls_fingerprint)
            else:
                host.probe_smtp(address, port, tls_fingerprint=tls_fingerprint)
        except RemoteError as exc:
            raise PostfixError(f"{host.label}: services.{label} ({service.name}): {exc}") from None


def _log(label: str, changes: list[tuple[str, str, str]], what: str) -> None:
    for key, old, new in changes:
        pulumi.log.info(f"{label}: {what} master.cf {key}: {old or '(absent)'} => {new or '(absent)'}")


class PostfixServices(dyn.Resource, module="postfix", name="PostfixServices"):
    """Managed master.cf submission entries on one host; see README ("services")."""

    master_cf: pulumi.Output[dict]
    originals: pulumi.Output[dict]
    postfix_version: pulumi.Output[str]

    def __init__(self, resource_name: str, args: PostfixServicesArgs, opts: pulumi.ResourceOptions | None = None):
        props = {**args.props(), "master_cf": None, "originals": None, "postfix_version": None}
        super().__init__(PostfixServicesProvider(), resource_name, props, opts)
