"""What a waiter is told of the lock's holder (the host wrote it, so it is cut to one clean, short line), and how
a stale lock goes."""

from __future__ import annotations

import pytest

from secure_postfix.remote.host_lock import HOLDER_CHARS, LOCK_FILE, HostLock, held_message, holder_text


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


HOLDER = "apply one from ctl (pid 5) since 2026-12-04 05:00:00 UTC, host pid 77, freed 20 s after its last heartbeat"


def test_a_waiter_is_told_who_holds_and_how_a_stale_lock_goes():
    message = held_message("mx (192.0.2.1)", HOLDER, 120)
    assert message.startswith(f"mx (192.0.2.1): another apply holds the host lock {LOCK_FILE}: {HOLDER}. ")
    assert "Waited 120 s for it; nothing was changed." in message
    assert "the lock frees itself 20 s after that controller's last heartbeat" in message
    assert "make sure that apply is no longer running, then run `kill 77` as root on the host." in message
    assert "\n" not in message


def test_a_holder_without_heartbeat_is_not_said_to_go_by_itself():
    message = held_message("mx", "apply one from ctl (pid 5) since 2026-12-04 05:00:00 UTC, host pid 77", 1)
    assert "frees itself" not in message and "sends no heartbeat" in message and "`kill 77`" in message


def test_only_the_hosts_own_pid_at_the_end_counts():
    # A line cut short, or a name that claims a pid: no pid to kill is made up.
    message = held_message("mx", "apply host pid 1 from ctl (pid 5) since 2026-12-04 05:00:00 UTC…", 1)
    assert "`kill 1`" not in message and f"the host pid that {LOCK_FILE} names" in message
    assert "a holder that left no name" in held_message("mx", "", 1)


@pytest.mark.parametrize("bad", [0.0, 0.5, -1.0, float("nan"), float("inf"), 1e9])
def test_stale_after_is_a_sane_number_of_seconds(bad):
    with pytest.raises(ValueError, match="stale_after"):
        HostLock(None, "x", stale_after=bad)  # type: ignore[arg-type]  (refused before the session is used)
