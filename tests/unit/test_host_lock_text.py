"""What a waiter is told of the lock's holder: the host wrote it, so it is cut to one clean, short line."""

from __future__ import annotations

from secure_postfix.remote.host_lock import HOLDER_CHARS, holder_text


def test_the_holder_line_is_the_last_one_after_a_logins_notices():
    out = b"Welcome to this host\n\nan apply from ctl (pid 5) since 2026-12-04 05:00:00 UTC, host pid 77\n"
    assert holder_text(out) == "an apply from ctl (pid 5) since 2026-12-04 05:00:00 UTC, host pid 77"


def test_control_characters_are_not_passed_to_the_terminal():
    assert holder_text(b"evil\x1b[2J\x07 holder\r\n") == "evil?[2J? holder"


def test_a_long_holder_text_is_cut():
    text = holder_text(b"x" * 100_000)
    assert len(text) == HOLDER_CHARS and text.endswith("\u2026")


def test_nothing_written_gives_nothing():
    assert holder_text(b"") == "" and holder_text(b"\n \n") == ""
