import contextlib
import signal

import pytest

from secure_postfix.core import postfix_rules as rules


def problems(directives, **kw):
    return [str(p) for p in rules.check_directives(directives, **kw)]


def test_good_limits_pass():
    good = {
        "message_size_limit": "20480000",
        "header_size_limit": "51200",
        "queue_minfree": "30720000",
        "default_process_limit": "50",
        "smtpd_client_connection_rate_limit": "30",
        "smtpd_client_message_rate_limit": "100",
        "anvil_rate_time_unit": "60s",
        "smtpd_client_event_limit_exceptions": "$mynetworks, 192.0.2.0/24, [2001:db8::]/32, !10.1.2.3, .example.com",
    }
    assert problems(good) == []


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("message_size_limit", "-1", "whole number of bytes"),
        ("message_size_limit", "10M", "whole number of bytes"),
        ("default_process_limit", "1.5", "whole number"),
        ("anvil_rate_time_unit", "0", "time value"),
        ("anvil_rate_time_unit", "60x", "time value"),
        ("smtpd_client_event_limit_exceptions", "10.0.0.0/33", "is not a network"),
        ("smtpd_client_event_limit_exceptions", "::1/128", "is not a network"),
        ("smtpd_client_event_limit_exceptions", "300.1.1.1", "is not a network"),
    ],
)
def test_bad_limit_values(name, value, fragment):
    found = problems({name: value})
    assert len(found) == 1 and found[0].startswith(name) and fragment in found[0]


def test_time_units():
    assert [rules.time_seconds(v) for v in ("60", "60s", "5m", "1h", "1d", "1w")] == [60, 60, 300, 3600, 86400, 604800]


def test_queue_minfree_must_be_zero_or_one_and_a_half_times_message_size():
    small = {"message_size_limit": "1000", "header_size_limit": "500"}
    assert problems({"queue_minfree": "0", **small}) == []
    assert problems({"queue_minfree": "1500", **small}) == []
    found = problems({"queue_minfree": "1499", **small})
    assert found == ["queue_minfree: is 1499 but must be 0 or at least 1.5 x message_size_limit (1000) = 1500"]


def test_queue_minfree_uses_postfix_default_size_when_unmanaged():
    assert problems({"queue_minfree": "15360000"}) == []
    assert "15360000" in problems({"queue_minfree": "1000"})[0]


def test_header_limit_not_above_message_limit():
    found = problems({"header_size_limit": "2000", "message_size_limit": "1000"})
    assert found == ["header_size_limit: is 2000 but must not exceed message_size_limit (1000)"]


def test_unknown_values_skip_cross_field_rules():
    assert problems({"queue_minfree": "1"}, unknown=["message_size_limit"]) == []


def test_control_characters_and_newlines_are_refused():
    found = problems({"myhostname": "mx.example.com\nrelayhost = evil"})
    assert found and "newline or control character" in found[0]
    assert problems({"myhostname": "a\tb"})


def test_unknown_directive_is_named():
    assert problems({"mesage_size_limit": "1"}) == [
        "mesage_size_limit: is not a parameter that Postfix knows (postconf -d); check the spelling"
    ]


def test_host_parameter_list_wins_over_bundled_one():
    assert problems({"new_in_3_9": "1"}, known=frozenset({"new_in_3_9"})) == []


def test_as_text():
    assert rules.as_text(10240000) == "10240000"
    assert rules.as_text(10.0) == "10"
    assert rules.as_text(True) == "yes"
    assert rules.as_text(["$mynetworks", "192.0.2.0/24"]) == "$mynetworks, 192.0.2.0/24"


@contextlib.contextmanager
def at_most(seconds: int):
    """Fails the block if it runs longer than `seconds`: a bound far above the work, so that only work that grows
    faster than the text (seconds for 40 KB, hours for 2 MB before) can reach it."""

    def expired(_signum, _frame):
        raise AssertionError(f"still checking after {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


TWO_MB_NETWORKS = ", ".join(f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}/32" for i in range(130_000))


def test_a_two_megabyte_value_is_expanded_in_one_pass():
    assert len(TWO_MB_NETWORKS) > 2_000_000
    with at_most(20):
        assert rules.expansion_variants(TWO_MB_NETWORKS) == [TWO_MB_NETWORKS]
        references = "$mynetworks, ${stress?{10}:{20}} " + "$myhostname, 192.0.2.1/32 " * 80_000
        assert len(rules.expansion_variants(references)) == 2
        assert rules.expansion_problems("x", TWO_MB_NETWORKS, rules.known_parameters()) == []


def test_a_value_longer_than_the_limit_is_refused_at_once_naming_the_field():
    with at_most(5):
        problems = rules.check_directives({"smtpd_client_event_limit_exceptions": TWO_MB_NETWORKS})
    assert [p.field for p in problems] == ["smtpd_client_event_limit_exceptions"]
    assert f"is {len(TWO_MB_NETWORKS)} characters long; at most 100000" in problems[0].message
    assert "lookup table" in problems[0].message


def test_a_value_at_the_limit_is_checked_whole():
    value = ("192.0.2.1/32, " * 10_000)[: rules.MAX_VALUE_LENGTH].rstrip(", ")
    with at_most(10):
        assert rules.check_directives({"smtpd_client_event_limit_exceptions": value}) == []
