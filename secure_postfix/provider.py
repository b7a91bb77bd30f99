"""What every resource that changes files on a mail host shares: the floor the providers stand on.

- `ApplyError`, the one error a refused or rolled-back change raises;
- one SSH session per operation, under a per-host lock in this process and the lock on the host itself;
- `HostProvider`, the create/read/update/delete template: each resource supplies its checks, its
  apply, its refresh and its removal, and the template does the rest the same way for all;
- `Change` and `run_change`, the one transaction: check the staged copy, prepare (baseline, backups),
  swap atomically, load (reload or restart, then wait until the daemon took it), verify from outside,
  and put the previous files back on any failure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import os
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import pulumi
import pulumi.dynamic as dyn

from secure_postfix import connection as conn
from secure_postfix.core import ledger
from secure_postfix.core.problem import Problem
from secure_postfix.remote.ssh import RemoteError, Session, SshTarget


class ApplyError(Exception):
    """A change could not be applied; the host was put back as it was."""


# Operations on one host must not interleave (the provider runs several on threads).
_host_locks: dict[str, threading.Lock] = {}
_host_locks_guard = threading.Lock()


def host_lock(label: str) -> threading.Lock:
    with _host_locks_guard:
        return _host_locks.setdefault(label, threading.Lock())


def ssh_target(props: Mapping[str, Any]) -> SshTarget:
    """The SSH target, with the operator's time limits when set (a slow link, or a test of a cut one).

    SECURE_POSTFIX_CONNECT_TIMEOUT and SECURE_POSTFIX_COMMAND_TIMEOUT are seconds.
    """
    target = conn.ssh_target(props)
    limits = {}
    for field, name in (
        ("connect_timeout", "SECURE_POSTFIX_CONNECT_TIMEOUT"),
        ("command_timeout", "SECURE_POSTFIX_COMMAND_TIMEOUT"),
    ):
        raw = os.environ.get(name)
        if not raw:
            continue
        try:
            limits[field] = float(raw)
        except ValueError:
            limits[field] = -1.0
        if not 0 < limits[field] < float("inf"):
            raise ApplyError(f"{target.label}: {name}={raw!r} is not a number of seconds above 0. Nothing was changed.")
    return dataclasses.replace(target, **limits) if limits else target


@contextlib.contextmanager
def host_session(props: Mapping[str, Any], holder: str | None) -> Iterator[Session]:
    """One SSH session to the resource's host; with `holder`, the host's own lock is held for it too."""
    target = ssh_target(props)
    with host_lock(target.identity), Session(target) as session:
        if holder is None:
            yield session
        else:
            with session.host_lock(holder):
                yield session


def load_ledger(session: Session, path: str) -> ledger.Ledger:
    return ledger_from(session.target.label, path, session.read_file(path))


def ledger_from(label: str, path: str, data: bytes | None) -> ledger.Ledger:
    """The ledger in `data` (None: no ledger yet), or an error that says how to mend it."""
    try:
        return ledger.Ledger.parse(data.decode("ascii") if data else None)
    except (ledger.LedgerError, UnicodeDecodeError) as exc:
        raise ApplyError(
            f"{label}: {path}, the project's record of first originals, {exc}; mend or remove it "
            "by hand. Nothing was changed."
        ) from None


def save_ledger(session: Session, path: str, book: ledger.Ledger) -> None:
    if book.empty:
        session.run(["rm", "-f", "--", path])
    else:
        session.write_file_atomic(path, book.render().encode("ascii"), mode="0600", owner="root:root")


PROVIDER_KEY = "__provider"


def moved_provider_only(olds: Mapping[str, Any], news: Mapping[str, Any], computed: tuple[str, ...]) -> bool:
    """True when the serialized provider is all that differs between the stored and the new inputs.

    The provider is stored by reference to its class; a release that moves the class (the package once named
    `components`) changes that reference, which the engine would otherwise plan as an update of every resource.
    `olds` are the stored outputs: the inputs and what the provider computed.
    """
    if olds.get(PROVIDER_KEY) == news.get(PROVIDER_KEY):
        return False
    names = (set(news) | set(olds)) - set(computed) - {PROVIDER_KEY}
    if any(conn.is_unknown(news.get(k)) for k in names):
        return False
    return all(olds.get(k) == news.get(k) for k in names)


def text_digest(text: str | None) -> str:
    """SHA-256 of a file's text as it is on the host; "-" for a file that is absent."""
    return "-" if text is None else hashlib.sha256(text.encode("utf-8", errors="surrogateescape")).hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclasses.dataclass
class FileJournal:
    """A change that replaces one whole file (Dovecot's file, master.cf), recorded in the host's ledger from
    before its first byte lands until it is over.

    The record holds the file's text before the change (None: the file was absent) and the digest after it. If the
    link or the controller dies in between (after the swap, before the reload, say), the next operation on the
    host finds the record, puts the text back and makes the daemon load it, so that file, daemon and state agree
    again; an `up` then applies the change anew, reload included.
    """

    session: Session
    ledger_path: str
    book: ledger.Ledger
    label: str
    path: str

    def begin(self, owner: str, before: str | None, after: str) -> None:
        self.book.pending = {
            "owner": owner,
            "started": _now(),
            "path": self.path,
            "text": before,
            "after": text_digest(after),
        }
        save_ledger(self.session, self.ledger_path, self.book)

    def end(self) -> None:
        self.book.pending = None
        save_ledger(self.session, self.ledger_path, self.book)

    def mine(self) -> bool:
        """Whether the record under way (if any) is a change of this journal's file."""
        return bool(self.book.pending) and self.book.pending.get("path") == self.path

    def resolve(
        self, current: str | None, put_back: Callable[[str | None], None], reload: Callable[[], None], daemon: str
    ) -> bool:
        """Undo a change of the file an earlier operation left half done; True when there was one."""
        if not self.mine():
            return False
        pending = self.book.pending or {}
        before, started = pending.get("text"), pending.get("started", "?")
        if text_digest(current) not in (pending.get("after"), text_digest(before)):
            raise ApplyError(
                f"{self.label}: a change of {self.path} started at {started} was cut off, and {self.path} was changed "
                f'since by something else; its text before that change is the "text" of the "pending" entry in '
                f"{self.ledger_path}. Put {self.path} right by hand, then remove that entry. Nothing was changed."
            )
        if current != before:
            put_back(before)
        # Even a file that is already back may not be what the daemon runs (a rollback cut before its reload).
        reload()
        self.end()
        pulumi.log.warn(
            f"{self.label}: a change of {self.path} started at {started} was cut off before it finished; it was "
            f"undone first ({self.path} as it was before it, {daemon} reloaded)"
        )
        return True


class HostProvider(dyn.ResourceProvider):
    """Create, read, update and delete for a resource on one host, the same way for every resource.

    A subclass names itself (`resource`, `id_prefix`), the input properties a CheckFailure may name
    besides the connection's (`named`), and what it computes (`computed`, left out of refreshed
    inputs); it supplies `problems` and `inputs` (no host), `apply`, `refresh` and `remove` (each
    given the open session).
    """

    resource: ClassVar[str]
    id_prefix: ClassVar[str]
    named: ClassVar[frozenset[str]] = frozenset()
    computed: ClassVar[tuple[str, ...]] = ()
    # A refresh that may have to undo a change cut off half way takes the host's lock.
    refresh_locks: ClassVar[bool] = False

    # -- what each resource supplies ----------------------------------------------------
    def problems(self, props: Mapping[str, Any]) -> list[Problem]:
        raise NotImplementedError

    def inputs(self, props: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def apply(self, session: Session, id_: str, props: dict[str, Any], olds: Mapping[str, Any] | None) -> dict:
        """Make the host match `props` (`olds`: the previous outputs, None on create); returns the outputs."""
        raise NotImplementedError

    def refresh(self, session: Session, id_: str, props: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def refresh_unlocked(self, session: Session, id_: str, props: dict[str, Any]) -> dict[str, Any] | None:
        """A refresh without the host's lock, when all it reads comes in one command under a shared lock and there
        is nothing to undo; None when that cannot be (the caller then takes the lock and runs `refresh`)."""
        return None

    def remove(self, session: Session, id_: str, props: dict[str, Any]) -> None:
        raise NotImplementedError

    def preview_problems(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
        """What the new inputs ask that the host cannot do, judged on what the last up or refresh read from it
        (`olds`, the stored outputs: the daemon's version). No host is contacted; [] when nothing is known."""
        return []

    # -- the template -------------------------------------------------------------------
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dyn.CheckResult:
        where = conn.host_label(news)
        named = {*conn.NAMED_PROPERTIES, *self.named}
        failures = [
            dyn.CheckFailure(conn.failure_property(p.field, named), f"{where}: {p}") for p in self.problems(news)
        ]
        return dyn.CheckResult(self.inputs(news), failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.DiffResult:
        # Check has only the old inputs; diff alone sees the stored outputs, where the host's version is kept.
        problems = self.preview_problems(olds, news)
        if problems:
            raise ApplyError(
                f"{conn.host_label(news)}: " + "; ".join(problems) + " (judged on the version the host reported at "
                "the last up or refresh; `pulumi refresh` reads it again). Nothing was changed."
            )
        replaces = conn.replaced_fields(olds, news)
        if not replaces and moved_provider_only(olds, news, self.computed):
            # The provider's code moved (a new release's module path), nothing the host gets did: no update.
            return dyn.DiffResult(changes=False)
        # changes=None: the engine diffs old and new inputs itself and shows each property.
        return dyn.DiffResult(changes=None, replaces=replaces)

    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        # A fresh id per resource: two resources on one machine (a rename, another port) are two owners.
        id_ = f"{self.id_prefix}:{props['host']}:{secrets.token_hex(4)}"
        with host_session(props, self._holder("apply")) as session:
            outs = self.apply(session, id_, props, None)
        return dyn.CreateResult(id_=id_, outs=outs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.UpdateResult:
        with host_session(news, self._holder("apply")) as session:
            return dyn.UpdateResult(outs=self.apply(session, id_, news, olds))

    def read(self, id_: str, props: dict[str, Any]) -> dyn.ReadResult:
        with host_session(props, None) as session:
            refreshed = self.refresh_unlocked(session, id_, props) if self.refresh_locks else None
            if refreshed is None:
                with session.host_lock(self._holder("refresh")) if self.refresh_locks else contextlib.nullcontext():
                    refreshed = self.refresh(session, id_, props)
        inputs = {k: v for k, v in refreshed.items() if k not in self.computed}
        return dyn.ReadResult(id_=id_, outs=refreshed, inputs=inputs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        with host_session(props, self._holder("delete")) as session:
            self.remove(session, id_, props)

    def _holder(self, operation: str) -> str:
        """Who holds the host's lock, as another controller waiting for it is told."""
        return f"a {self.resource} {operation}"


class Change:
    """One change of files on one host, as `run_change` runs it; each daemon says how a step is done.

    `refusal` is the error type in which the daemon's own check refuses the staged copy;
    `changed` names what changes, for every message.
    """

    label: str
    daemon: str
    changed: str
    refusal: type[Exception] = RemoteError

    def check_staged(self) -> None:
        """The daemon's own check of the staged copy; raises `refusal` with its words."""
        raise NotImplementedError

    def prepare(self) -> None:
        """What the rollback and the verdict need from before: log offset, state, backups."""

    def swap(self) -> None:
        """Put the new files in place, each atomically and only if it is still the file read."""
        raise NotImplementedError

    def load(self) -> None:
        """Make the daemon take the new files, and wait (bounded) until it has."""
        raise NotImplementedError

    def verify(self) -> None:
        """Check from outside, as a client would, that the daemon serves; raises when it does not."""
        raise NotImplementedError

    def roll_back(self, swapped: bool) -> str:
        """Put the previous files back and the daemon serving; the sentence that says how it went."""
        raise NotImplementedError

    def refused(self, exc: Exception) -> Exception:
        return ApplyError(f"{exc}. Nothing was changed.")

    def not_written(self, reason: str, exc: Exception) -> Exception:
        """The swap itself failed; the files were put back."""
        return exc

    def not_undone(self, reason: str, again: RemoteError) -> Exception:
        """The rollback failed too."""
        return again


def run_change(change: Change) -> None:
    """Check the staged copy, prepare, swap, load, verify; on any failure put the previous files back."""
    try:
        change.check_staged()
    except change.refusal as exc:
        raise change.refused(exc) from None
    change.prepare()
    swapped = False
    try:
        change.swap()
        swapped = True
        change.load()
        change.verify()
    except Exception as exc:  # whatever went wrong, the host must not keep a half-applied change
        reason = str(exc).removeprefix(f"{change.label}: ")
        try:
            outcome = change.roll_back(swapped)
        except RemoteError as again:
            raise change.not_undone(reason, again) from None
        if not swapped:
            raise change.not_written(reason, exc) from None
        raise ApplyError(
            f"{change.label}: {change.daemon} failed after the change of {change.changed}: {reason}. {outcome}."
        ) from None
