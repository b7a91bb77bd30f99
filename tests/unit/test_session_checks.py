"""The checks that end a test run: the secret sweep over every worker's record, and the names of bed leftovers."""

from __future__ import annotations

from tests.session_checks import CONFIG_SECRET_LABEL, SweepRecord, sweep
from tests.tls_files import make_pair
from toolchain.testbed.layout import instance_names


def test_a_secret_given_to_one_worker_is_found_in_another_workers_output():
    _, key = make_pair("sweep.testbed.invalid")
    line = key.splitlines()[3]
    given = SweepRecord("gw0", {"tls key": key}, [("s: up (ok)", "nothing here")], [("up", True)])
    leaked = SweepRecord("gw1", {}, [("t: preview (ok)", f"+ banner: {line}")], [("preview", True)])
    result = sweep([given, leaked])
    assert result.problems == ["tls key in gw1: t: preview (ok)"]
    assert "2 test process(es)" in result.figure


def test_nothing_to_search_is_said_not_passed_silently():
    assert sweep([SweepRecord("gw0")]).figure == "secret sweep: no engine command ran"


def test_when_the_secret_module_ran_the_sweep_must_have_seen_every_kind_of_command():
    record = SweepRecord("main", {CONFIG_SECRET_LABEL: "x" * 40}, [], [("preview", True), ("up", True)])
    problems = sweep([record]).problems
    assert any("no ['destroy', 'refresh', 'stack export'] command" in p for p in problems), problems
    assert "the sweep saw no failed command" in problems
    assert "the sweep was given no TLS key" in problems


def test_a_saved_record_reads_back_whole(tmp_path):
    record = SweepRecord("gw3", {"k": "v" * 20}, [("where", "text")], [("up", False)])
    record.save(tmp_path)
    assert SweepRecord.load_all(tmp_path) == [record]
    assert (tmp_path / "sweep-gw3.json").stat().st_mode & 0o777 == 0o600


def test_bed_names_of_one_instance_are_not_a_prefix_of_anothers():
    one, twelve = instance_names(1), instance_names(12)
    assert not twelve[0].startswith(one[0]) and twelve[1] != one[1]
    assert not f"{twelve[2]}=x".startswith(f"{one[2]}=")
