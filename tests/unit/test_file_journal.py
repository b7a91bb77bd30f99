"""The shared floor's record of a whole-file change (Dovecot's file, master.cf) and how the next contact undoes it."""

from __future__ import annotations

import json

import pytest

from secure_postfix.core import ledger
from secure_postfix.provider import ApplyError, FileJournal, text_digest

LEDGER = "/etc/dovecot/secure-postfix.ledger.json"
PATH = "/etc/dovecot/conf.d/99-secure-postfix-auth.conf"


class LedgerSession:
    """Holds the ledger file as the host would (written whole, removed when empty)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}

    def write_file_atomic(self, path: str, data: bytes, **_: object) -> None:
        self.files[path] = data

    def run(self, argv: list[str], **_: object) -> None:
        assert argv[:3] == ["rm", "-f", "--"]
        self.files.pop(argv[3], None)

    def record(self) -> dict | None:
        data = self.files.get(LEDGER)
        return json.loads(data)["pending"] if data else None


def journal(session: LedgerSession, book: ledger.Ledger | None = None) -> FileJournal:
    return FileJournal(session, LEDGER, book or ledger.Ledger(), "auth (10.0.0.3)", PATH)  # type: ignore[arg-type]


def test_the_record_holds_the_text_before_and_the_digest_after_and_the_ledger_schema_takes_it():
    session = LedgerSession()
    journal(session).begin("dovecot-auth:x", "old\n", "new\n")
    pending = session.record()
    assert pending["path"] == PATH and pending["text"] == "old\n" and pending["after"] == text_digest("new\n")
    assert ledger.Ledger.parse(session.files[LEDGER].decode()).pending == pending


@pytest.mark.parametrize(("current", "put_back"), [("new\n", ["old\n"]), ("old\n", [])])
def test_a_change_left_half_done_is_put_back_and_the_daemon_reloaded(current, put_back):
    session = LedgerSession()
    first = journal(session)
    first.begin("dovecot-auth:x", "old\n", "new\n")
    book = ledger.Ledger.parse(session.files[LEDGER].decode())
    written, reloads = [], []
    assert journal(session, book).resolve(current, written.append, lambda: reloads.append(1), "Dovecot") is True
    assert written == put_back and reloads == [1]
    assert LEDGER not in session.files  # nothing else held: the ledger goes with the record


def test_a_file_absent_before_the_change_is_removed_again():
    session = LedgerSession()
    journal(session).begin("dovecot-auth:x", None, "new\n")
    book = ledger.Ledger.parse(session.files[LEDGER].decode())
    written: list[str | None] = []
    assert journal(session, book).resolve("new\n", written.append, lambda: None, "Dovecot")
    assert written == [None]


def test_a_file_changed_since_by_something_else_is_left_alone_with_a_way_out():
    session = LedgerSession()
    journal(session).begin("dovecot-auth:x", "old\n", "new\n")
    book = ledger.Ledger.parse(session.files[LEDGER].decode())
    written: list[str | None] = []
    with pytest.raises(ApplyError) as refused:
        journal(session, book).resolve("by hand\n", written.append, lambda: None, "Dovecot")
    message = str(refused.value)
    assert message.startswith("auth (10.0.0.3): a change of " + PATH)
    assert LEDGER in message and "Nothing was changed." in message
    assert written == [] and session.record() is not None


def test_a_record_of_another_file_is_not_this_journals_to_undo():
    book = ledger.Ledger(pending={"owner": "o", "started": "s", "before": "a", "after": "b", "files": [], "made": []})
    assert journal(LedgerSession(), book).resolve("x", pytest.fail, pytest.fail, "Dovecot") is False
