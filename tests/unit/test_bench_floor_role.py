"""The benchmark's engine floor and RHEL System Role column, their pure parts: logins read from sshd's log, the
ratios to the floor and to the role, where time goes above the floor, the provider plugin's timings, imports, the
role's play, inventory and ansible.cfg, its recap, and the role's archive unpacked as Ansible looks it up."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
import yaml

from toolchain.bench import floor, imports, report, role
from toolchain.bench.__main__ import floor_sizes, rhel_role_line
from toolchain.bench.fleet import limits
from toolchain.bench.floor import state_bytes, state_resources
from toolchain.bench.floor_provider import NoopProvider
from toolchain.providerhost import timings

SSHD_LOG = """\
Server listening on 10.77.0.11 port 22.
Accepted publickey for root from 10.77.0.1 port 40052 ssh2: ED25519 SHA256:abc
Connection closed by authenticating user root 10.77.0.1 port 40060 [preauth]
Failed publickey for root from 10.77.0.1 port 40070 ssh2: RSA SHA256:def
2026-11-20T10:00:01+00:00 f001 sshd[88]: Accepted publickey for root from 10.77.0.1 port 40080 ssh2: ED25519
Received disconnect from 10.77.0.1 port 40052:11: disconnected by user
"""


def test_logins_are_the_accepted_lines_only():
    assert report.accepted_logins(SSHD_LOG) == 2
    assert report.accepted_logins("") == 0


def sample(seconds: float, hosts: int, **kw) -> report.Sample:
    return report.Sample(seconds=seconds, logins=hosts, hosts=hosts, **kw)


def with_floor() -> report.Results:
    results = report.Results()
    for n, k in ((20, 1.0), (100, 2.0)):
        results.add(report.FIRST_UP, sample(10.0 * k, n))
        results.add(report.PREVIEW, sample(3.0 * k, n, state_bytes=50 * 1024))
        results.add(report.NOOP_UP, sample(4.0 * k, n))
        results.add(report.NOOP_REFRESH_UP, sample(6.0 * k, n))
        results.add(report.BASE_READ, sample(1.0 * k, n))
        results.add(report.FLOOR_FIRST_UP, sample(5.0 * k, n))
        results.add(report.FLOOR_PREVIEW, sample(2.0 * k, n, state_bytes=20 * 1024))
        results.add(report.FLOOR_NOOP_UP, sample(2.0 * k, n))
        results.add(report.FLOOR_NOOP_REFRESH_UP, sample(3.0 * k, n))
    results.add(report.ROLE_FIRST, sample(45.0, 20))
    results.add(report.ROLE_NOOP, sample(20.0, 20))
    results.add(report.FLOOR_NOOP_UP, sample(30.0, 1000))  # the floor alone, beyond the fleet
    return results


def test_ratios_to_the_floor_at_the_same_size_and_to_the_role():
    rows = {r[0]: r[1:] for r in report.floor_ratio_rows(with_floor())}
    # no-op up 4 / 2; preview 3 / 2; first up 10 / 5; up --refresh 6 / (floor's 3 + read 1); role 45 / 10, 20 / 4
    assert rows["20"] == ("2.00x", "1.50x", "2.00x", "1.50x", "4.50x", "5.00x")
    assert rows["100"] == ("2.00x", "1.50x", "2.00x", "1.50x", "-", "-")
    assert "1000" not in rows  # no fleet there: no ratio to make


def test_a_missing_base_read_leaves_the_refresh_ratio_out():
    results = with_floor()
    del results.samples[report.BASE_READ][20]
    assert report.floor_ratio_rows(results)[0][4] == "-"


def test_the_floor_table_holds_only_the_floor_and_the_fleet_table_not_the_floor():
    results = with_floor()
    assert {r[1] for r in report.floor_rows(results)} <= set(report.FLOOR_OPERATIONS)
    assert [r[0] for r in report.floor_rows(results)][-1] == "1000"
    assert not {r[1] for r in report.table_rows(results)} & set(report.FLOOR_OPERATIONS)
    assert report.FLOOR_NOOP_UP not in report.plot_series(results)


def test_growth_of_the_floor_names_the_state_size():
    results = report.Results()
    for n, seconds, size in ((100, 3.0, 380 * 1024), (1000, 24.0, 3800 * 1024)):
        results.add(report.FLOOR_PREVIEW, sample(seconds, n, state_bytes=size))
    lines = report.growth_lines(results, 100, 1000, report.FLOOR_OPERATIONS, "resources")
    assert lines[0] == "growth 100 -> 1000 resources (linear: 10.0x):"
    expected = [*report.FLOOR_PREVIEW.split(), "8.00x", "(3.00", "->", "24.00", "s,", "state", "380", "->", "3800"]
    assert lines[1].split() == [*expected, "KiB)"]


def test_provider_timings_parse_and_sum():
    text = "start 0.200000\nload 0.150000\nCheck 0.160000\nCheck 0.002000\nDiff 0.001000\nnoise\nCheck x\n"
    found = report.parse_provider_timings(text)
    assert found == {"start": [0.2], "load": [0.15], "Check": [0.16, 0.002], "Diff": [0.001]}
    summary = report.provider_summary(found)
    assert summary["Check"] == [2.0, pytest.approx(0.162), 0.16]


def test_above_the_floor_takes_the_providers_load_out_of_its_calls():
    results = report.Results()
    mine = {"start": [1, 0.2, 0.2], "load": [1, 0.15, 0.15], "Check": [2, 0.162, 0.16], "Diff": [2, 0.01, 0.005]}
    base = {"start": [1, 0.2, 0.2], "load": [1, 0.001, 0.001], "Check": [2, 0.003, 0.002], "Diff": [2, 0.001, 0.001]}
    results.add(report.NOOP_UP, sample(2.5, 2, state_bytes=26 * 1024, declare_seconds=0.01, provider=mine))
    results.add(report.FLOOR_NOOP_UP, sample(2.0, 2, state_bytes=11 * 1024, declare_seconds=0.005, provider=base))
    (row,) = report.breakdown_rows(results)
    assert row[:5] == ("2", report.NOOP_UP, "2.50", "2.00", "0.50")
    assert row[5] == "0.01 / 0.01"
    assert row[6] == "0.35 / 0.20"  # plugin start + the provider's load
    assert row[7] == "0.02 / 0.00"  # 0.172 - 0.15 and 0.004 - 0.001
    assert row[8] == "26 / 11"


def test_new_sample_fields_survive_json():
    results = with_floor()
    results.add(report.NOOP_UP, sample(1.0, 5, declare_seconds=0.1, provider={"Check": [5.0, 0.5, 0.2]}))
    again = report.from_json(json.loads(json.dumps(report.to_json(results))))
    assert again.samples == results.samples


def test_the_plugins_recorder_writes_lines_the_report_reads(tmp_path):
    path = tmp_path / "t.txt"
    assert timings.recorder({}) is None
    record = timings.recorder({timings.TIMINGS_VARIABLE: str(path)})
    assert record is not None
    assert record.timed("Check", lambda a, b=0: a + b)(1, b=2) == 3
    record.write("start", 0.25)
    found = report.parse_provider_timings(path.read_text())
    assert set(found) == {"Check", "start"} and found["start"] == [0.25]
    assert 0 < timings.since_process_start() < 24 * 3600


def test_the_floors_provider_changes_nothing_and_sees_only_input_changes():
    provider = NoopProvider()
    olds = {"host": "h1", "limits": {"a": 1}, "__provider": "x"}
    assert provider.diff("h1", olds, {**olds, "__provider": "y"}).changes is False
    assert provider.diff("h1", olds, {**olds, "limits": {"a": 2}}).changes is True
    created = provider.create({"host": "h1", "limits": {}})
    assert created.id == "h1"


def test_each_floor_operation_runs_beside_the_rounds_load(tmp_path):
    """In a fleet round the floor is timed under the same mail monitor as the project's operations."""
    seen: list[tuple[str, bool]] = []
    active = [False]

    class Load:
        def __enter__(self):
            active[0] = True

        def __exit__(self, *exc):
            active[0] = False

    class Stack:
        def __getattr__(self, name):
            return lambda **kwargs: seen.append((name, active[0]))

    class Project:
        n = 3
        stack = Stack()
        declared = floor.Declared()

        def resources(self):
            return 3

        def state(self):
            return None

    with floor.ProviderTimings(tmp_path / "timings.txt") as recorded:
        floor.one_round(Project(), 8, recorded, report.Results(), Load)
    assert [name for name, _ in seen] == ["up", "preview", "up", "up", "refresh", "destroy"]
    assert all(under_load for _, under_load in seen)


def test_state_file_counts_resources_of_one_type(tmp_path):
    path = tmp_path / "s.json"
    resources = [{"type": "pulumi:pulumi:Stack"}] + [{"type": "pulumi-python:dynamic/bench:FloorHost"}] * 3
    path.write_text(json.dumps({"checkpoint": {"latest": {"resources": resources}}}))
    assert state_resources(path, "pulumi-python:dynamic/bench:FloorHost") == 3
    assert state_resources(tmp_path / "none.json", "x") == 0
    assert state_bytes(path) == path.stat().st_size and state_bytes(None) == 0


IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       120 |        120 |   _io
import time:      3000 |       5000 |     paramiko.util
import time:      2000 |       7000 |   paramiko
import time:     10000 |      17120 | secure_postfix
"""


def test_importtime_lines_parse_with_their_depth():
    lines = imports.parse_importtime(IMPORTTIME)
    assert [(line.module, line.depth) for line in lines] == [
        ("_io", 1),
        ("paramiko.util", 2),
        ("paramiko", 1),
        ("secure_postfix", 0),
    ]
    assert imports.total_seconds(lines) == pytest.approx(0.01512)
    assert imports.heaviest(lines, 2) == [("secure_postfix", 0.01), ("paramiko", 0.005)]


def test_the_role_gets_the_same_limits_as_postfix_conf():
    wanted = limits("10.0.0.9")
    play = yaml.safe_load(role.render_play(wanted))
    assert len(play) == 1 and play[0]["hosts"] == "all" and play[0]["roles"] == ["linux-system-roles.postfix"]
    conf = play[0]["vars"]["postfix_conf"]
    assert conf == {k: str(v) for k, v in wanted.items()}
    assert conf["smtpd_client_event_limit_exceptions"] == "$mynetworks, 10.0.0.9"
    assert play[0]["vars"]["postfix_check"] is True
    # The one adaptation in the play: the service tasks go to the shim, named by `use`.
    assert play[0]["module_defaults"] == {"service": {"use": "service"}}


def test_inventory_and_config_pin_the_beds_key_and_host_keys(tmp_path):
    inventory = role.Inventory({"f001": "10.77.1.1", "f002": "10.77.1.2"}, "/bed/client_key", "/bed/known_hosts")
    hosts = yaml.safe_load(role.render_inventory(inventory))["all"]
    assert hosts["hosts"] == {"f001": {"ansible_host": "10.77.1.1"}, "f002": {"ansible_host": "10.77.1.2"}}
    assert hosts["vars"] == {"ansible_user": "root"}
    cfg = role.render_config(tmp_path, inventory, forks=7)
    assert "forks = 7" in cfg and "private_key_file = /bed/client_key" in cfg
    assert "UserKnownHostsFile=/bed/known_hosts -o StrictHostKeyChecking=yes" in cfg
    assert "host_key_checking = True" in cfg and "interpreter_python = /usr/bin/python3" in cfg
    assert f"library = {role.SHIM_DIR}" in cfg and (role.SHIM_DIR / "service.py").is_file()


RECAP = """\
PLAY RECAP *********************************************************************
f001                       : ok=22   changed=4    unreachable=0    failed=0    skipped=15   rescued=0    ignored=0
f002                       : ok=16   changed=0    unreachable=0    failed=0    skipped=21   rescued=0    ignored=0
f003                       : ok=3    changed=0    unreachable=1    failed=0    skipped=0    rescued=0    ignored=0
"""


def test_the_recap_says_which_hosts_changed_and_failed():
    text = "TASK [x] ***\nchanged: [f001]\n\n" + RECAP
    assert role.recap(text)["f001"]["changed"] == 4
    assert role.changed_hosts(text) == ["f001"]
    assert role.failed_hosts(text) == ["f003"]
    assert role.recap("no recap here") == {}


def test_the_archive_unpacks_under_the_name_ansible_looks_up(tmp_path):
    archive = tmp_path / role.ARCHIVE_NAME
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in (
            ("linux-system-roles-postfix/tasks/main.yml", b"---\n"),
            ("linux-system-roles-postfix/COPYING", b"GPL"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    target = role.unpack_role(archive, tmp_path / "roles")
    assert target == tmp_path / "roles" / "linux-system-roles.postfix"
    assert (target / "tasks" / "main.yml").read_bytes() == b"---\n"
    assert role.archive_path(tmp_path) == archive and role.not_measured_line(tmp_path) is None


def test_a_missing_archive_is_said_in_one_line(tmp_path):
    line = role.not_measured_line(tmp_path)
    assert line == f"RHEL System Role: not measured ({tmp_path / role.ARCHIVE_NAME} is not there)"
    assert role.archive_path(tmp_path) is None
    assert rhel_role_line(line, [20], []) == line
    assert rhel_role_line(None, [], []) == "RHEL System Role: not measured (--role-sizes is empty)"
    assert rhel_role_line(None, [20, 50], [20]) == "RHEL System Role: not measured at [50] (not among --sizes)"
    assert rhel_role_line(None, [20], [20]) is None


def test_floor_sizes_reach_beyond_the_bed():
    assert floor_sizes("1000,20,100") == [20, 100, 1000]
    assert floor_sizes("") == []
    with pytest.raises(Exception, match="resources"):
        floor_sizes("0")


def test_markdown_tables_for_the_docs():
    text = report.markdown_table(("N", "ratio"), [("20", "1.24x"), ("100", "-")])
    assert text.splitlines() == ["| N | ratio |", "|---|---|", "| 20 | 1.24x |", "| 100 | - |"]
