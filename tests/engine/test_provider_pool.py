"""The provider plugin applies more than four hosts at once: the SDK's own plugin never does."""

from __future__ import annotations

import pytest

from tests.engine.harness import EngineProject, bed_config
from toolchain.testbed import fleet

pytestmark = pytest.mark.engine

HOSTS = 6
TIMES = "/var/log/postfix-calls.log"
# Inside each host's own mount namespace, `postfix` (the staged check and the reload of every apply) notes
# when it starts and ends, and takes half a second more, so that applies running together plainly overlap.
WRAP = f"""
cat > /run/postfix-wrapper <<'SH'
#!/bin/sh
echo "start $(date +%s.%N)" >> {TIMES}
sleep 0.5
/run/real-postfix "$@"; rc=$?
echo "end $(date +%s.%N)" >> {TIMES}
exit $rc
SH
chmod 0755 /run/postfix-wrapper
touch /run/real-postfix
mount --bind /usr/sbin/postfix /run/real-postfix
mount --bind /run/postfix-wrapper /usr/sbin/postfix
"""


def apply_window(text: str) -> tuple[float, float]:
    """The first start and the last end of the `postfix` calls one apply made on a host."""
    starts = [float(line.split()[1]) for line in text.splitlines() if line.startswith("start ")]
    ends = [float(line.split()[1]) for line in text.splitlines() if line.startswith("end ")]
    assert starts and len(starts) == len(ends), text
    return min(starts), max(ends)


def most_at_once(windows: list[tuple[float, float]]) -> int:
    """The largest number of windows open at one moment."""
    events = sorted([(start, 1) for start, _ in windows] + [(end, -1) for _, end in windows])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_most_at_once_counts_overlapping_windows():
    assert most_at_once([(0, 1), (2, 3)]) == 1
    assert most_at_once([(0, 3), (1, 4), (2, 5), (3.5, 6)]) == 3


def test_six_hosts_apply_at_the_same_time(testbed, tmp_path):
    with fleet(testbed, HOSTS) as hosts:
        names = [h.name for h in hosts]
        for name in names:
            testbed.run(name, WRAP)
        project = EngineProject(tmp_path / "pool", "pool")
        limits = {"message_size_limit": 20480000, "queue_minfree": 40960000}
        project.configure(bed_config(testbed, {"pool": {"postfix_hosts": names, "limits": limits}}, names))
        run = project.up()
        assert run.ok, run.text
        for name in names:
            assert testbed.run(name, "postconf -h message_size_limit").stdout.strip() == "20480000"
        windows = [apply_window((testbed.hosts[n].root / "log" / TIMES.rsplit("/", 1)[1]).read_text()) for n in names]
        # With the SDK's four workers, a fifth host starts only once one of the first four is done.
        assert most_at_once(windows) > 4, windows
