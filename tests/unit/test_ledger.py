"""The host's record of first originals: recorded once, owned by resources, gone when nothing is owned."""

import pytest

from secure_postfix.core.ledger import Ledger, LedgerError, directive_key, path_key

A, B = "postfix:h:aaaa", "postfix:h:bbbb"
SIZE = directive_key("message_size_limit")
KEY = path_key("/etc/postfix/tls/secure-postfix.key")


def test_first_original_is_never_overwritten_by_a_later_owner():
    book = Ledger()
    book.claim(A, [SIZE, KEY], {SIZE: {"raw": None}, KEY: {"existed": False}})
    book.claim(B, [SIZE, KEY], {SIZE: {"raw": "message_size_limit = 1048576\n"}, KEY: {"existed": True}})
    assert book.originals == {SIZE: {"raw": None}, KEY: {"existed": False}}
    assert book.declared_by_others(A) == {SIZE, KEY}


def test_release_keeps_what_another_owner_declares_and_empties_at_the_end():
    book = Ledger()
    book.claim(A, [SIZE, KEY], {SIZE: {"raw": None}, KEY: {"existed": False}})
    book.claim(B, [SIZE], {})
    book.release(A)
    assert book.owners == {B: [SIZE]} and book.originals == {SIZE: {"raw": None}}
    book.release(B)
    assert book.empty


def test_round_trip_keeps_bytes_that_are_not_utf8():
    book = Ledger()
    raw = b"smtpd_banner = caf\xe9\n".decode("utf-8", "surrogateescape")
    book.claim(A, [SIZE], {SIZE: {"raw": raw}})
    text = book.render()
    text.encode("ascii")
    assert Ledger.parse(text).originals[SIZE]["raw"] == raw


@pytest.mark.parametrize("text", ["{", '{"version": 99}', "[]"])
def test_unreadable_ledger_is_refused(text):
    with pytest.raises(LedgerError):
        Ledger.parse(text)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"version": 1, "owners": ["a"]}', "owners must map each resource"),
        ('{"version": 1, "owners": {"a": "main.cf:x"}}', "owners must map each resource"),
        ('{"version": 1, "originals": [1]}', "originals must map each key"),
        ('{"version": 1, "originals": {"main.cf:x": 1}}', "is not a recorded original"),
        ('{"version": 1, "originals": {"main.cf:x": {"raw": 5}}}', "is not a recorded original"),
        ('{"version": 1, "pending": "x"}', "pending must be a record"),
        ('{"version": 1, "pending": {"files": "a"}}', "pending must be a record"),
        ('{"version": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}", "is not JSON"),
        ('{"version": 1, "owners": {}, "pad": "' + "x" * 1_000_001 + '"}', "more than a ledger can be"),
    ],
    ids=[
        "owners-list",
        "owner-keys-text",
        "originals-list",
        "original-number",
        "raw-number",
        "pending-text",
        "pending-files-text",
        "deep-nesting",
        "oversized",
    ],
)
def test_a_ledger_of_another_shape_is_refused_with_a_reason_not_a_crash(text, says):
    # Each of these crashed with AttributeError, TypeError or RecursionError, or was taken as it was.
    with pytest.raises(LedgerError, match=says):
        Ledger.parse(text)


def test_what_the_project_writes_has_the_shape_it_reads():
    book = Ledger()
    book.claim(
        A, [SIZE, KEY], {SIZE: {"raw": "message_size_limit = 1", "earlier": [[3, "x = 1"]]}, KEY: {"existed": False}}
    )
    book.pending = {"owner": A, "started": "now", "before": "", "after": "ab", "files": ["/f"], "made": []}
    assert Ledger.parse(book.render()).pending == book.pending
