"""Facts in, commands out: PostfixConfig's change run against recorded facts, checked by the steps it asks the host for.

`RecordingHost` stands in for `PostfixHost` (duck-typed, no SSH): it returns what Postfix 3.7.11 printed on the test
bed (tests/fixtures/facts/) and records each operation with its main arguments, in one list shared with
`RecordingSession`, which holds the ledger the journal writes. The refusal of a staged copy and the "changed
meanwhile" check are PostfixHost's own code over the recorded output. What is asserted is the order of operations on
the host: the staged check before any write, backups and the journal before the swap, the reload and the probe after
it, and on a failure which files go back and whether Postfix is restarted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from secure_postfix import postfix_config as pc
from secure_postfix import postfix_daemon as daemon
from secure_postfix.core import check_scope, host_output, postfix_output
from secure_postfix.core.certificates import certificate_blocks
from secure_postfix.core.postfix_features import TLS_DIR, TLS_PAIR_FILE
from secure_postfix.core.postfix_plan import Plan, plan_edit
from secure_postfix.core.smtp import Reply
from secure_postfix.core.tls_policy import POLICY_MAP_FILE
from secure_postfix.provider import ApplyError, run_change
from secure_postfix.remote.postfix_host import PostfixError, PostfixFacts, PostfixHost
from secure_postfix.remote.ssh import ChangedMeanwhileError, Result, Session

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "facts"
LABEL = "mx (10.231.17.10)"
OWNER = "postfix:10.231.17.10:0a1b2c3d"
CONFIG_DIRECTORY = "/etc/postfix"
MAIN_CF = "/etc/postfix/main.cf"
LEDGER = "/etc/postfix/secure-postfix.ledger.json"
DESIRED = {"message_size_limit": "10240000"}
FINGERPRINT = "3F:7A:00:11"
# Lines as the test bed's mail.log has them (as in test_log_verdicts.py).
RELOAD = "Dec 04 04:34:15 mx postfix/master[332]: reload -- version 3.7.11, configuration /etc/postfix"
STARTED = "Dec 04 04:34:21 mx postfix/master[1277]: daemon started -- version 3.7.11, configuration /etc/postfix"
FATAL = "Dec 04 04:34:29 mx postfix/smtpd[1285]: fatal: no SASL authentication mechanisms"
CLEAN_STAGED_CHECK = "--- staged\n--- rc 0\n--- live\n--- rc 0\n"


def recorded(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


# What the facts script printed on a bed host with no ledger yet: the ledger and the backups come with the facts.
FACTS = host_output.parse_postfix_facts(recorded("postfix-3.7-facts-ledger.json")["output"])
# An earlier script's output, without them: the ledger is then read on its own, leftover backups cleared blindly.
EARLIER_FACTS = host_output.parse_postfix_facts(recorded("postfix-3.7-facts.json")["output"])
DIGESTS = host_output.parse_digests(recorded("postfix-3.7-digests.json")["output"])


class RecordingHost:
    """A PostfixHost with recorded answers; `calls` gets (operation, main arguments...) for each operation.

    `probes`: whether each SMTP probe in turn is answered (answered once the list is used up);
    `failures`: operation -> the error its first call raises; `after_reload`: mail log lines the reload causes.
    """

    # PostfixHost's own logic over the operations below: the refusal of a staged copy is the real one.
    check_staged = PostfixHost.check_staged
    log_fatals = PostfixHost.log_fatals

    def __init__(
        self,
        calls: list[tuple],
        facts: PostfixFacts = FACTS,
        staged_report: str = CLEAN_STAGED_CHECK,
        probes: tuple[bool, ...] = (),
        after_reload: tuple[str, ...] = (),
        failures: dict[str, Exception] | None = None,
    ):
        self.label = LABEL
        self.calls = calls
        self.recorded_facts = facts
        self.staged_report = staged_report
        self.probes = list(probes)
        self.after_reload = list(after_reload)
        self.failures = dict(failures or {})
        self.digests = dict(DIGESTS)
        self.mail_log: list[str] = []
        self.parts: list[str] = []  # which part of `postfix check` each staged check ran
        # What write_file put on the "host": the certificate reads see only that.
        self.files: dict[str, str] = {}
        # The session the ledger goes through (the real host writes it over its own session): see `on`.
        self.s: RecordingSession | None = None

    def on(self, session: RecordingSession) -> RecordingHost:
        self.s = session
        return self

    def _record(self, *call: object) -> None:
        self.calls.append(call)
        failure = self.failures.pop(str(call[0]), None)
        if failure is not None:
            raise failure

    def facts(self) -> PostfixFacts:
        self._record("facts")
        return self.recorded_facts

    def staged_check_report(
        self,
        text: str,
        config_directory: str,
        name: str = "main.cf",
        log_file: str | None = None,
        part: str = check_scope.WHOLE,
    ) -> postfix_output.StagedCheck:
        self._record("staged_check_report", text, config_directory)
        self.parts.append(part)
        report = postfix_output.parse_staged_check(self.staged_report)
        return dataclasses.replace(report, log_size=len(self.mail_log) if log_file else None)

    # Reads of the mail log are not recorded: the wait for the master's line polls them as often as timing allows.
    # A "size" here is a count of lines, which is all an offset is used for.
    def log_size(self, log_file: str | None) -> int | None:
        return len(self.mail_log)

    def log_since(self, log_file: str | None, offset: int | None) -> list[str]:
        return self.mail_log[offset or 0 :]

    def probe_smtp(
        self,
        address: str = "127.0.0.1",
        port: int = 25,
        timeout: float = 15.0,
        while_waiting: Callable[[], None] = lambda: None,
        tls_fingerprint: str | None = None,
    ) -> tuple[Reply, Reply]:
        self._record("probe_smtp", tls_fingerprint)
        if self.probes and not self.probes.pop(0):
            raise PostfixError(f"{self.label}: the SMTP probe of {address}:{port} failed: timed out")
        return Reply(220, ["mx.testbed.invalid ESMTP"]), Reply(250, ["mx.testbed.invalid", "STARTTLS"])

    def file_digests(self, paths: list[str]) -> dict[str, str | None]:
        self._record("file_digests", tuple(paths))
        return {p: self.digests.get(p) for p in paths}

    def ensure_directory(self, path: str) -> bool:
        self._record("ensure_directory", path)
        return True

    def backup_files(self, paths: list[str]) -> None:
        self._record("backup_files", tuple(paths))

    def begin_change(self, facts: PostfixFacts, backups: list[str], ledger_path: str, ledger_text: str) -> None:
        """As PostfixHost's: main.cf compared with the facts' digest first, then backups and the ledger."""
        self._record("begin_change", tuple(backups))
        main_cf = f"{facts.config_directory}/main.cf"
        if facts.main_cf_sha256 and (self.digests.get(main_cf) or "-") != facts.main_cf_sha256:
            raise ChangedMeanwhileError(f"{self.label}: {main_cf} was changed on the host after this operation read it")
        assert self.s is not None, "RecordingHost(...).on(session): the ledger needs a session"
        self.s.files[ledger_path] = ledger_text.encode("ascii")

    def end_change(self, ledger_path: str, ledger_text: str | None, backups: list[str]) -> None:
        self._record("end_change", tuple(backups))
        assert self.s is not None, "RecordingHost(...).on(session): the ledger needs a session"
        if ledger_text is None:
            self.s.files.pop(ledger_path, None)
        else:
            self.s.files[ledger_path] = ledger_text.encode("ascii")

    def write_file(self, path: str, content: str, mode: str) -> None:
        self._record("write_file", path, mode)
        self.files[path] = content

    # Not recorded: a read of what the host serves changes nothing there.
    def certificate_blocks(self, path: str) -> str:
        return "".join(certificate_blocks(self.files.get(path, "")))

    def swap_in(self, text: str, config_directory: str, expect_sha256: str | None = None) -> None:
        self._record("swap_in", text, config_directory, expect_sha256)

    def reload(self) -> None:
        self._record("reload")
        self.mail_log += [RELOAD, *self.after_reload]

    def restart(self) -> None:
        self._record("restart")
        self.mail_log.append(STARTED)

    def restore_files(self, paths: list[str]) -> None:
        self._record("restore_files", tuple(paths))

    def remove_files(self, paths: list[str]) -> None:
        # As PostfixHost's: no paths, no command.
        if paths:
            self._record("remove_files", tuple(paths))

    def drop_backups(self, paths: list[str]) -> None:
        self._record("drop_backups", tuple(paths))


class RecordingSession:
    """The session the journal writes the ledger through: files kept in memory, writes recorded in `calls`."""

    def __init__(self, calls: list[tuple]):
        self.calls = calls
        self.target = SimpleNamespace(label=LABEL)
        self.files: dict[str, bytes] = {}

    def read_file(self, path: str) -> bytes | None:
        return self.files.get(path)

    def write_file_atomic(
        self,
        path: str,
        data: bytes,
        mode: str = "",
        owner: str = "",
        age: int = 0,
        expect_sha256: str | None = None,
    ) -> None:
        self.calls.append(("session.write_file_atomic", path))
        self.files[path] = data

    def run(
        self,
        argv: list[str],
        stdin: bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
        what: str | None = None,
    ) -> Result:
        self.calls.append(("session.run", tuple(argv)))
        if argv[:3] == ["rm", "-f", "--"]:
            for path in argv[3:]:
                self.files.pop(path, None)
        return Result(0, b"", b"")


def ledger_of(session: RecordingSession) -> dict | None:
    """The ledger as the session holds it now (None when removed or never written)."""
    data = session.files.get(LEDGER)
    return None if data is None else json.loads(data)


@pytest.fixture(autouse=True)
def no_settle_pause(monkeypatch):
    # The pause after the master's line lets real smtpd processes turn over; a recorded log has none to wait for.
    monkeypatch.setattr(daemon, "_SETTLE_SECONDS", 0.0)


@pytest.fixture
def calls() -> list[tuple]:
    return []


def planned() -> Plan:
    return plan_edit(FACTS.main_cf, DESIRED)


def change_for(
    host: RecordingHost,
    session: RecordingSession,
    plan: Plan,
    files: dict[str, tuple[str, str]] | None = None,
    tls_fingerprint: str | None = None,
) -> pc.MainCfChange:
    journal = pc.Journal.load(session, host.on(session), host.recorded_facts, OWNER)
    return pc.MainCfChange(host, host.recorded_facts, plan, files or {}, tls_fingerprint, journal)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def signature_shape(function: Callable) -> list[tuple[str, object, bool]]:
    return [(p.name, p.kind, p.default is p.empty) for p in inspect.signature(function).parameters.values()]


@pytest.mark.parametrize(("fake", "real"), [(RecordingHost, PostfixHost), (RecordingSession, Session)])
def test_every_operation_of_the_fakes_is_one_of_the_real_class_with_the_same_parameters(fake, real):
    """A fake that drifted from PostfixHost or Session would let these tests pass on calls the real one lacks."""
    # `on` gives a fake host its session, which the real one is built with.
    own = {n: f for n, f in vars(fake).items() if callable(f) and not n.startswith("_") and n != "on"}
    assert own
    for name, function in own.items():
        assert hasattr(real, name), f"{real.__name__} has no {name}"
        assert signature_shape(function) == signature_shape(getattr(real, name)), name


def test_a_change_checks_the_staged_copy_then_backs_up_journals_swaps_reloads_and_probes(calls):
    """Nothing is written before Postfix accepted the staged copy, and the probe comes only after the reload."""
    host, session, plan = RecordingHost(calls), RecordingSession(calls), planned()
    run_change(change_for(host, session, plan))
    assert calls == [
        ("staged_check_report", plan.text, CONFIG_DIRECTORY),
        ("probe_smtp", None),  # did Postfix serve before the change? (decides reload or restart)
        # One command: is main.cf still the file the facts read? backups; the journal: pending from here on.
        ("begin_change", (MAIN_CF,)),
        ("swap_in", plan.text, CONFIG_DIRECTORY, FACTS.main_cf_sha256),
        ("reload",),
        ("probe_smtp", None),
    ]
    assert "message_size_limit = 10240000" in plan.text.splitlines()


def test_the_journal_records_the_change_as_pending_and_leaves_ending_it_to_the_caller(calls):
    """A controller cut off after the swap must leave a record from which the next operation undoes the change."""
    host, session, plan = RecordingHost(calls), RecordingSession(calls), planned()
    run_change(change_for(host, session, plan))
    pending = ledger_of(session)["pending"]
    assert (pending["owner"], pending["before"], pending["after"]) == (OWNER, FACTS.main_cf_sha256, sha256(plan.text))
    assert (pending["files"], pending["made"]) == ([], [])
    # Ending it is the caller's commit, in the same write that records the result.
    assert ("session.run", ("rm", "-f", "--", LEDGER)) not in calls


@pytest.mark.parametrize(
    ("fixture", "words"),
    [
        ("postfix-3.7-staged-check-broken.json", "line 49: missing '=' after attribute name"),
        ("postfix-3.7-staged-check-warning.json", "unused parameter: smtpd_bogus_parameter=1"),
    ],
)
def test_a_staged_copy_postfix_refuses_stops_before_any_write_and_quotes_postfix(calls, fixture, words):
    """Postfix's own verdict on the staged copy, recorded on the bed, must stop the change at the first step."""
    host = RecordingHost(calls, staged_report=recorded(fixture)["output"])
    plan = planned()
    with pytest.raises(ApplyError) as raised:
        run_change(change_for(host, RecordingSession(calls), plan))
    message = str(raised.value)
    assert message.startswith(f"{LABEL}: Postfix rejects the new main.cf: ")
    assert words in message
    assert message.endswith("(changed: message_size_limit). Nothing was changed.")
    assert calls == [("staged_check_report", plan.text, CONFIG_DIRECTORY)]


def test_main_cf_changed_since_the_facts_were_read_stops_before_the_backup_and_the_swap(calls):
    """A hand edit made meanwhile must be neither overwritten nor backed up over."""
    host = RecordingHost(calls)
    host.digests[MAIN_CF] = sha256("someone edited main.cf meanwhile\n")
    session = RecordingSession(calls)
    with pytest.raises(ChangedMeanwhileError, match="was changed on the host after this operation read it"):
        run_change(change_for(host, session, planned()))
    assert [c[0] for c in calls] == ["staged_check_report", "probe_smtp", "begin_change"]
    assert ledger_of(session) is None


def test_a_swap_that_fails_ends_the_journal_without_reloading_or_restarting(calls):
    """main.cf was not replaced: restarting Postfix or writing the old text back would be a change of its own."""
    meanwhile = ChangedMeanwhileError(f"{LABEL}: {MAIN_CF} was changed on the host meanwhile")
    host, session = RecordingHost(calls, failures={"swap_in": meanwhile}), RecordingSession(calls)
    with pytest.raises(ApplyError) as raised:
        run_change(change_for(host, session, planned()))
    assert str(raised.value) == (
        f"{LABEL}: the change of message_size_limit could not be written: {MAIN_CF} was changed on the host "
        "meanwhile. main.cf was not changed and Postfix was not reloaded."
    )
    ops = [c[0] for c in calls]
    assert ops[ops.index("swap_in") :] == ["swap_in", "end_change"]
    assert calls[-1] == ("end_change", (MAIN_CF,))  # the record cleared (the ledger removed) and the backups
    assert ledger_of(session) is None


def test_a_probe_that_fails_after_the_reload_puts_main_cf_back_restarts_and_quotes_the_mail_log(calls):
    """The probe is the last word: main.cf goes back, Postfix restarts (a throttled master ignores a reload)."""
    host = RecordingHost(calls, probes=(True, False, True), after_reload=(FATAL,))
    session = RecordingSession(calls)
    with pytest.raises(ApplyError) as raised:
        run_change(change_for(host, session, planned()))
    assert calls[calls.index(("reload",)) :] == [
        ("reload",),
        ("probe_smtp", None),  # refused
        ("swap_in", FACTS.main_cf, CONFIG_DIRECTORY, None),
        ("restart",),
        ("probe_smtp", None),  # answered
        ("end_change", (MAIN_CF,)),
    ]
    assert str(raised.value) == (
        f"{LABEL}: Postfix failed after the change of message_size_limit: smtpd cannot start; the mail log says: "
        f"{FATAL}. The previous configuration was put back and Postfix restarted; it answers SMTP again."
    )


def test_a_postfix_that_did_not_answer_before_the_change_is_restarted_instead_of_reloaded(calls):
    """A master that throttles smtpd after an earlier crash ignores a reload; only a restart loads the new file."""
    host = RecordingHost(calls, probes=(False, True))
    run_change(change_for(host, RecordingSession(calls), planned()))
    ops = [c[0] for c in calls]
    assert ops[ops.index("swap_in") :] == ["swap_in", "restart", "probe_smtp"]
    assert "reload" not in ops


def test_tls_files_are_backed_up_with_main_cf_written_before_it_and_probed_for_their_certificate(calls):
    """Postfix must never load a main.cf naming a pair file that is not there yet, nor serve another certificate."""
    host, session, plan = RecordingHost(calls), RecordingSession(calls), planned()
    files = {TLS_PAIR_FILE: ("KEY\nCERT\n", "0600")}
    change = change_for(host, session, plan, files, FINGERPRINT)
    run_change(change)
    assert calls == [
        ("staged_check_report", plan.text, CONFIG_DIRECTORY),
        ("probe_smtp", None),
        ("ensure_directory", TLS_DIR),
        ("begin_change", (MAIN_CF, TLS_PAIR_FILE)),
        ("write_file", TLS_PAIR_FILE, "0600"),
        ("swap_in", plan.text, CONFIG_DIRECTORY, FACTS.main_cf_sha256),
        ("reload",),
        ("probe_smtp", FINGERPRINT),
    ]
    assert ledger_of(session)["pending"]["made"] == change.made == [TLS_DIR + "/"]


def test_a_rollback_with_tls_files_puts_them_back_and_removes_the_directory_it_made(calls):
    """The host must end as before the change: the old pair file (or none), and no directory the change created."""
    host, session = RecordingHost(calls, probes=(True, False, True)), RecordingSession(calls)
    files = {TLS_PAIR_FILE: ("KEY\nCERT\n", "0600")}
    with pytest.raises(ApplyError, match=r"put back \(the TLS files too\) and Postfix restarted; it answers SMTP"):
        run_change(change_for(host, session, planned(), files, FINGERPRINT))
    assert calls[calls.index(("reload",)) :] == [
        ("reload",),
        ("probe_smtp", FINGERPRINT),
        ("restore_files", (TLS_PAIR_FILE,)),
        ("remove_files", (TLS_DIR + "/",)),
        ("swap_in", FACTS.main_cf, CONFIG_DIRECTORY, None),
        ("restart",),
        ("probe_smtp", None),
        ("end_change", (MAIN_CF, TLS_PAIR_FILE)),
    ]


def provider_apply(monkeypatch, host: RecordingHost, session: RecordingSession) -> dict:
    """PostfixConfigProvider.apply with `host` in place of the PostfixHost it builds on the session.

    The one substitution is pytest's monkeypatch of `postfix_config.PostfixHost`, the class that would talk SSH.
    """
    monkeypatch.setattr(pc, "PostfixHost", host.on)
    props = {"host": "10.231.17.10", "main_cf": dict(DESIRED)}
    return pc.PostfixConfigProvider().apply(session, OWNER, props, None)


def test_a_first_apply_goes_from_facts_to_the_checked_swap_and_commits_the_original(monkeypatch, calls):
    """The provider reads the facts (the ledger and any leftover backups with them) once, runs the change, and
    records the first original."""
    host, session = RecordingHost(calls), RecordingSession(calls)
    outputs = provider_apply(monkeypatch, host, session)
    ops = [c[0] for c in calls]
    assert ops[:2] == ["facts", "staged_check_report"]
    assert ops[ops.index("swap_in") :] == [
        "swap_in",
        "reload",
        "probe_smtp",
        "end_change",  # the commit: result recorded, pending cleared, backups dropped, in one command
    ]
    book = ledger_of(session)
    assert "pending" not in book
    assert book["owners"] == {OWNER: ["main.cf:message_size_limit"]}
    # "" is how state says "was absent": destroy removes the line again.
    assert outputs["originals"] == {"message_size_limit": ""}
    assert outputs["postfix_version"] == "3.7.11"
    # A limit is nothing postfix-script's check-warn reads: the staged copy is judged by the rest of the check.
    assert host.parts == [check_scope.FATAL_ONLY]


def test_a_change_of_what_check_warn_reads_gets_the_whole_postfix_check(monkeypatch, calls):
    host, session = RecordingHost(calls), RecordingSession(calls)
    monkeypatch.setattr(pc, "PostfixHost", host.on)
    props = {"host": "10.231.17.10", "main_cf": {"data_directory": "/srv/postfix-data"}}
    pc.PostfixConfigProvider().apply(session, OWNER, props, None)
    assert host.parts == [check_scope.WHOLE]


def test_an_apply_on_a_host_that_already_holds_the_value_neither_checks_nor_swaps_nor_reloads(monkeypatch, calls):
    """`up` with nothing to change must not touch main.cf or Postfix; it only records its ownership."""
    holding = planned().text
    facts = dataclasses.replace(FACTS, main_cf=holding, main_cf_sha256=sha256(holding))
    host, session = RecordingHost(calls, facts=facts), RecordingSession(calls)
    outputs = provider_apply(monkeypatch, host, session)
    assert calls == [("facts",), ("end_change", ())]  # the ledger records the ownership
    # The host's own definition is the original now, kept byte for byte (its line end too) for destroy to put back.
    assert outputs["originals"] == {"message_size_limit": "message_size_limit = 10240000\n"}


def test_leftover_backups_the_facts_show_are_cleared_before_the_change(monkeypatch, calls):
    """A change cut off after its record was cleared leaves backups: the facts list them, and only they go."""
    host = RecordingHost(calls, facts=dataclasses.replace(FACTS, backed_up=(MAIN_CF,)))
    provider_apply(monkeypatch, host, RecordingSession(calls))
    assert calls[:3] == [
        ("facts",),
        ("drop_backups", (MAIN_CF,)),
        ("staged_check_report", planned().text, "/etc/postfix"),
    ]


def test_facts_of_an_earlier_script_read_the_ledger_on_their_own_and_clear_every_backup(monkeypatch, calls):
    """Facts without the ledger's section (an earlier release's script) still find the ledger and the leftovers."""
    session = RecordingSession(calls)
    session.files[LEDGER] = b'{"originals": {}, "owners": {}, "version": 1}\n'
    host = RecordingHost(calls, facts=EARLIER_FACTS)
    assert not EARLIER_FACTS.ledger_read and FACTS.ledger_read
    provider_apply(monkeypatch, host, session)
    assert [c[0] for c in calls][:3] == ["facts", "drop_backups", "staged_check_report"]
    assert calls[1] == ("drop_backups", (MAIN_CF, TLS_PAIR_FILE, POLICY_MAP_FILE))
