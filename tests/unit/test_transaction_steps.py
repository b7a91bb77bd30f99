"""`run_change`, the one transaction every change of files on a host goes through, driven by a scripted `Change`.

No host: each step of `Scripted` only records its name and raises where the test says, so these tests pin what
the transaction promises whatever the daemon: the order of the steps, that a refusal changes nothing, which
rollback each failure gets (`swapped` or not), and the message or error each outcome ends in.
"""

from __future__ import annotations

import pytest

from secure_postfix.provider import ApplyError, Change, run_change
from secure_postfix.remote.ssh import RemoteError

LABEL = "mx (10.0.0.2)"
DAEMON = "Fakemail"
CHANGED = "message_size_limit, /etc/fakemail/tls/pair.pem"
OUTCOME = "The previous configuration was put back and Fakemail restarted; it answers again"
STEPS = ["check_staged", "prepare", "swap", "load", "verify"]


class Refused(RemoteError):
    """The daemon's own check said no to the staged copy (PostfixError plays this part for Postfix)."""


class NotWritten(Exception):
    """What `Scripted.not_written` returns, keeping what it was given."""

    def __init__(self, reason: str, exc: Exception):
        super().__init__(reason)
        self.reason, self.exc = reason, exc


class NotUndone(Exception):
    """What `Scripted.not_undone` returns, keeping what it was given."""

    def __init__(self, reason: str, again: RemoteError):
        super().__init__(reason)
        self.reason, self.again = reason, again


class Scripted(Change):
    """A change whose steps record their names in `steps`; the step named `fail_at` raises `error`."""

    label = LABEL
    daemon = DAEMON
    changed = CHANGED
    refusal = Refused

    def __init__(
        self, fail_at: str | None = None, error: Exception | None = None, roll_back_error: RemoteError | None = None
    ):
        self.fail_at = fail_at
        # Messages from the remote layer start with the host's label, as RemoteError's do.
        self.error = error if error is not None else RemoteError(f"{LABEL}: {fail_at} went wrong")
        self.roll_back_error = roll_back_error
        self.steps: list[str] = []

    def _step(self, name: str) -> None:
        self.steps.append(name)
        if name == self.fail_at:
            raise self.error

    def check_staged(self) -> None:
        self._step("check_staged")

    def prepare(self) -> None:
        self._step("prepare")

    def swap(self) -> None:
        self._step("swap")

    def load(self) -> None:
        self._step("load")

    def verify(self) -> None:
        self._step("verify")

    def roll_back(self, swapped: bool) -> str:
        self.steps.append(f"roll_back(swapped={swapped})")
        if self.roll_back_error is not None:
            raise self.roll_back_error
        return OUTCOME

    def not_written(self, reason: str, exc: Exception) -> Exception:
        return NotWritten(reason, exc)

    def not_undone(self, reason: str, again: RemoteError) -> Exception:
        return NotUndone(reason, again)


def test_a_change_runs_check_prepare_swap_load_verify_in_that_order_and_is_not_rolled_back():
    """The staged check must come before anything is written, and the probe only after the daemon loaded the files."""
    change = Scripted()
    run_change(change)
    assert change.steps == STEPS


def test_a_refused_staged_copy_says_nothing_was_changed_and_neither_prepares_nor_swaps():
    """A refusal is the daemon's verdict on the staged copy: the host was not touched, and the message says so."""
    change = Scripted("check_staged", Refused(f"{LABEL}: {DAEMON} rejects the new file: line 3: missing '='"))
    with pytest.raises(ApplyError) as raised:
        run_change(change)
    assert str(raised.value) == f"{LABEL}: {DAEMON} rejects the new file: line 3: missing '='. Nothing was changed."
    assert change.steps == ["check_staged"]


def test_a_staged_check_that_could_not_run_is_no_refusal_and_passes_through_before_anything_runs():
    """Only the `refusal` type is the daemon's verdict; a broken link during the check is its own error, unwrapped."""
    lost = RemoteError(f"{LABEL}: the SSH connection was lost")
    change = Scripted("check_staged", lost)
    with pytest.raises(RemoteError) as raised:
        run_change(change)
    assert raised.value is lost
    assert change.steps == ["check_staged"]


def test_a_failed_prepare_is_not_rolled_back_because_nothing_was_swapped_yet():
    """prepare only reads the baseline and makes backups: a rollback there would restore files that never changed."""
    change = Scripted("prepare")
    with pytest.raises(RemoteError, match="prepare went wrong"):
        run_change(change)
    assert change.steps == ["check_staged", "prepare"]


def test_a_failed_swap_is_rolled_back_as_not_swapped_and_raises_what_not_written_returns():
    """A swap that failed left the old main file in place: the rollback must not restart the daemon on it."""
    change = Scripted("swap")
    with pytest.raises(NotWritten) as raised:
        run_change(change)
    assert change.steps == ["check_staged", "prepare", "swap", "roll_back(swapped=False)"]
    # The label is the message's own start; the reason handed on must not repeat it.
    assert raised.value.reason == "swap went wrong"
    assert raised.value.exc is change.error


def test_by_default_a_failed_swap_raises_the_swap_s_own_error_after_the_rollback():
    """A change that words no message of its own still gets its files back and the remote layer's words."""

    class Plain(Scripted):
        not_written = Change.not_written

    change = Plain("swap")
    with pytest.raises(RemoteError) as raised:
        run_change(change)
    assert raised.value is change.error
    assert change.steps[-1] == "roll_back(swapped=False)"


@pytest.mark.parametrize("step", ["load", "verify"])
def test_a_failure_after_the_swap_is_rolled_back_as_swapped_and_names_daemon_change_reason_and_outcome(step):
    """Past the swap the daemon may run the new files: the rollback restarts it, and the message says on what."""
    change = Scripted(step)
    with pytest.raises(ApplyError) as raised:
        run_change(change)
    assert change.steps == [*STEPS[: STEPS.index(step) + 1], "roll_back(swapped=True)"]
    assert str(raised.value) == f"{LABEL}: {DAEMON} failed after the change of {CHANGED}: {step} went wrong. {OUTCOME}."


def test_any_exception_after_the_swap_is_rolled_back_not_only_a_remote_error():
    """A bug in reading the probe's reply must not leave the host on a half-applied change either."""
    change = Scripted("verify", ValueError("the probe's reply could not be read"))
    with pytest.raises(ApplyError, match="the probe's reply could not be read"):
        run_change(change)
    assert change.steps[-1] == "roll_back(swapped=True)"


@pytest.mark.parametrize(("step", "swapped"), [("swap", False), ("load", True), ("verify", True)])
def test_a_rollback_that_fails_on_the_host_raises_what_not_undone_returns(step, swapped):
    """When the files could not be put back, the message must say the host may hold the change (not_undone's words)."""
    again = RemoteError(f"{LABEL}: the SSH connection was lost")
    change = Scripted(step, roll_back_error=again)
    with pytest.raises(NotUndone) as raised:
        run_change(change)
    assert change.steps[-1] == f"roll_back(swapped={swapped})"
    assert raised.value.reason == f"{step} went wrong"
    assert raised.value.again is again
