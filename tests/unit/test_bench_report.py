"""The benchmark's pure parts: medians, ratios, the table, the plot and its series."""

from __future__ import annotations

import json

import pytest

from toolchain.bench import report
from toolchain.bench.__main__ import sizes
from toolchain.bench.baseline import change_commands, read_command
from toolchain.bench.fleet import all_set, limits


def sample(seconds: float, hosts: int = 4, logins: int = 4, **kw) -> report.Sample:
    return report.Sample(seconds=seconds, logins=logins, hosts=hosts, **kw)


def filled() -> report.Results:
    results = report.Results()
    for n, base in ((20, 2.0), (100, 9.0)):
        for seconds in (base, base + 1, base - 0.5):
            results.add(report.FIRST_UP, sample(seconds * 1.1, hosts=n, logins=n, smtp_attempts=10))
            results.add(report.BASE_N, sample(seconds, hosts=n, logins=n))
            results.add(report.BASE_4, sample(seconds * 3, hosts=n, logins=n))
            results.add(report.BASE_READ, sample(1.0, hosts=n, logins=n))
            results.add(report.NOOP_REFRESH_UP, sample(1.4, hosts=n, logins=n))
    return results


def test_median_min_max_and_logins_per_host():
    stats = report.summarize([sample(3.0, logins=8), sample(1.0, logins=4), sample(2.0, logins=4)])
    assert (stats.median, stats.low, stats.high) == (2.0, 1.0, 3.0)
    assert stats.logins_per_host == 1.0


def test_smtp_failures_add_up_and_one_wrong_value_marks_the_row():
    stats = report.summarize(
        [sample(1, smtp_attempts=100, smtp_failed=0), sample(1, smtp_attempts=90, smtp_failed=3, values_ok=False)]
    )
    assert (stats.smtp_failed, stats.smtp_attempts, stats.values_ok) == (3, 190, False)


def test_no_samples_is_an_error():
    with pytest.raises(ValueError):
        report.summarize([])


@pytest.mark.parametrize(
    ("a", "b", "text"), [(3.0, 2.0, "1.50x"), (1.0, 3.0, "0.33x"), (None, 1.0, "-"), (1.0, None, "-"), (1.0, 0.0, "-")]
)
def test_ratio_text(a, b, text):
    assert report.ratio(a, b) == text


def test_table_lines_up_and_marks_missing_values():
    results = report.Results()
    results.add(report.FIRST_UP, sample(12.345, hosts=5, logins=5, smtp_attempts=300))
    results.add(report.BASE_N, sample(2.0, hosts=5, logins=5, values_ok=False))
    text = report.format_table(report.HEADER, report.table_rows(results))
    lines = text.splitlines()
    assert lines[0].split("  ")[0] == "N" and "median s" in lines[0]
    assert (
        "up: 8 limits (first)" in lines[2]
        and "12.35" in lines[2]
        and "0/300" in lines[2]
        and lines[2].split()[-2] == "ok"
    )
    assert lines[3].split()[-2] == "MISSING"
    # Figures are right-aligned under their header.
    assert lines[2].index("12.35") + len("12.35") == lines[0].index("median s") + len("median s")


def test_rows_follow_the_round_order_then_size():
    results = filled()
    rows = report.table_rows(results)
    assert [r[0] for r in rows] == ["20"] * 5 + ["100"] * 5
    assert [r[1] for r in rows[:5]] == [
        report.FIRST_UP,
        report.NOOP_REFRESH_UP,
        report.BASE_4,
        report.BASE_N,
        report.BASE_READ,
    ]


def test_ratios_against_the_baseline_and_growth():
    results = filled()
    rows = dict((r[0], r[1:]) for r in report.ratio_rows(results))
    assert rows["20"] == ("1.10x", "0.37x", "1.40x", "-")
    lines = report.growth_lines(results)
    assert lines[0] == "growth 20 -> 100 hosts (linear: 5.0x):"
    assert any(line.split()[:5] == ["baseline:", "change,", "N", "threads", "4.50x"] for line in lines)
    assert report.growth_lines(results, small=5) == []


def test_plot_has_one_series_per_operation_with_medians_and_bars(tmp_path):
    results = filled()
    series = report.plot_series(results)
    assert list(series) == [report.FIRST_UP, report.NOOP_REFRESH_UP, report.BASE_4, report.BASE_N, report.BASE_READ]
    sizes_, medians, lows, highs = series[report.BASE_N]
    assert (sizes_, medians, lows, highs) == ([20, 100], [2.0, 9.0], [1.5, 8.5], [3.0, 10.0])
    path = tmp_path / "plot.png"
    labels = report.write_plot(results, path, "test")
    assert labels == list(series)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_samples_survive_a_json_round_trip():
    results = filled()
    again = report.from_json(json.loads(json.dumps(report.to_json(results))))
    assert again.samples == results.samples


def test_sizes_flag():
    assert sizes("20,1,5,20") == [1, 5, 20]
    for bad in ("0", "101", "a,b", ""):
        with pytest.raises(Exception, match=r"size|whole"):
            sizes(bad)


def test_baseline_commands_and_the_values_check():
    wanted = limits("10.0.0.9")
    assert wanted["smtpd_client_event_limit_exceptions"] == "$mynetworks, 10.0.0.9"
    assert len(wanted) == 8
    assert read_command(["a", "b"]) == "postconf -h a b"
    edit, check, reload = change_commands({"x": 1, "y": "$mynetworks, 10.0.0.9"})
    assert edit == "postconf -e x=1 'y=$mynetworks, 10.0.0.9'"
    assert (check, reload) == ("postfix check", "postfix reload")
    good = [str(v) for v in wanted.values()]
    assert all_set({"h1": good, "h2": good}, wanted)
    assert not all_set({"h1": good, "h2": [*good[:-1], "$mynetworks"]}, wanted)


def test_the_mail_monitor_tries_each_host_every_50_ms_until_its_rate_cap():
    from toolchain.bench.monitor import MAX_RATE, sweep_period

    assert sweep_period(1) == sweep_period(2) == 0.05
    assert sweep_period(20) == 20 / MAX_RATE == 0.5
    assert sweep_period(100) == 2.5
