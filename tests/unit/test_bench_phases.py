"""The phase clock of `python -m toolchain.bench.phases`: each step counted once, and the provider left as it was."""

from __future__ import annotations

import time

from toolchain.bench import phases


def test_outer_step_counts_and_a_nested_one_does_not():
    clock = phases.Clock()
    inner = clock.timed("inner", lambda: time.sleep(0.05))

    def outer_body() -> None:
        time.sleep(0.05)
        inner()

    outer = clock.timed("outer", outer_body)
    with clock.job(0):
        outer()
        inner()
    assert 0.1 <= clock.spent[0]["outer"] < 0.3
    assert 0.05 <= clock.spent[0]["inner"] < 0.09  # only the call outside `outer`


def test_calls_outside_a_job_are_not_counted():
    clock = phases.Clock()
    step = clock.timed("x", lambda: 7)
    assert step() == 7
    assert dict(clock.spent) == {}


def test_every_step_exists_and_is_put_back_after_the_run():
    owners = [(phases._owner(path), attribute) for _, path, attribute in phases.STEPS]
    before = [owner.__dict__[attribute] for owner, attribute in owners]
    with phases.instrumented(phases.Clock()):
        during = [owner.__dict__[attribute] for owner, attribute in owners]
    after = [owner.__dict__[attribute] for owner, attribute in owners]
    assert after == before
    assert all(d is not b for d, b in zip(during, before, strict=True))


def test_rows_give_median_min_max_and_what_no_step_took():
    spent = {0: {"connect": 0.1, "swap": 0.2, "total": 1.0}, 1: {"connect": 0.3, "swap": 0.2, "total": 2.0}}
    rows = phases.phase_rows(20, {"apply (create)": (2.5, spent)})
    by_phase = {r[2]: r[3:] for r in rows}
    assert by_phase["connect"] == ("0.200", "0.100", "0.300")
    assert by_phase["other"] == ("1.100", "0.700", "1.500")
    assert by_phase["wall (all hosts)"] == ("2.500", "", "")
    assert "facts" not in by_phase  # a step that never ran is left out
