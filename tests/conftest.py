"""Shared pytest configuration: one test bed per test process, and the checks that end the run.

`make test` runs the suite with pytest-xdist: N worker processes (`TEST_WORKERS`, by default twice the cores and at
least 3), each with a test bed of its own. A worker gwK uses bed instance 10+K (its own namespaces, bridge,
subnet 10.231.(17+K).0/24, lock and folder); a lone run (`pytest tests/engine/test_x.py`) uses instance 9. A bed
belongs to one process, which runs one test at a time: every engine test, the fleet and fault tests included, has
its bed to itself. Neither touches the bed and state that `make up` made (instance 0, `.state/`).
"""

import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

# Whatever launched the run (`make test &` in a script, nohup) may have left SIGINT or SIGTERM ignored, and an
# ignored signal stays ignored in every child: the plugins and engines the tests stop with SIGINT would not stop.
# A handler (unlike SIG_IGN) is reset to the default in each child the tests start.
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGTERM, signal.SIG_DFL)

LONE_INSTANCE = 9
FIRST_WORKER_INSTANCE = 10
PROJECT_DIR = Path(__file__).resolve().parent.parent


def bed_dir(instance: int) -> Path:
    """One folder per instance: two processes on two instances must not share (and remove) one bed's folder."""
    return PROJECT_DIR / f".testbed-tests-{instance}"


_WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1", … in a worker; unset in a lone run
if _WORKER:
    os.environ["TESTBED_INSTANCE"] = str(FIRST_WORKER_INSTANCE + int(_WORKER.removeprefix("gw")))
    os.environ["TESTBED_DIR"] = str(bed_dir(int(os.environ["TESTBED_INSTANCE"])))
else:
    # Both can be overridden, e.g. to run two checkouts' lone runs at once.
    os.environ.setdefault("TESTBED_INSTANCE", str(LONE_INSTANCE))
    os.environ.setdefault("TESTBED_DIR", str(bed_dir(int(os.environ["TESTBED_INSTANCE"]))))

from tests import session_checks  # noqa: E402
from toolchain.testbed.layout import INSTANCE, instance_names  # reads TESTBED_INSTANCE, set just above  # noqa: E402
from toolchain.testbed.pytest_fixture import (  # noqa: E402, F401  (registers the `testbed` fixture)
    BUILT,
    testbed_fixture,
)

_OWN_BASETEMP = pytest.StashKey[str]()
_PROCESS_WATCH = pytest.StashKey[session_checks.ProcessWatch]()
_INSTANCES = pytest.StashKey[list]()
# Figures a test wants in the run's summary (pytest captures what a passing test prints).
FIGURES = pytest.StashKey[list]()


def worker_count() -> int:
    """TEST_WORKERS, or twice the cores and at least 3: engine tests mostly wait on SSH, daemons and the engine."""
    raw = os.environ.get("TEST_WORKERS", "").strip()
    if raw:
        if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 30):
            raise pytest.UsageError(f"TEST_WORKERS must be a whole number from 1 to 30, not {raw!r}")
        return int(raw)
    return max(3, 2 * (os.cpu_count() or 1))


def pytest_xdist_auto_num_workers(config):
    return worker_count()


def pytest_collection_modifyitems(session, config, items):
    """Modules marked `long(SECONDS)` are handed out first, longest first, so that no worker starts one when the
    others are nearly done (`make test` passes --no-loadscope-reorder so that xdist keeps this order); each
    module's tests keep their order."""

    def seconds(item) -> float:
        marker = item.get_closest_marker("long")
        return -float(marker.args[0]) if marker else 0.0

    items.sort(key=seconds)


@pytest.fixture
def report_figure(request):
    """`report_figure("…")`: a line shown in the run's terminal summary, whatever the test's outcome."""
    return request.config.stash.setdefault(FIGURES, []).append


def _is_worker(config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    config.addinivalue_line("markers", "engine: needs the local test bed (root, Linux namespaces, daemons)")
    config.addinivalue_line("markers", "long(seconds): keeps a worker busy about that long; started first")
    if _is_worker(config):
        return
    # The run's folder: pytest's shared /tmp/pytest-of-USER is pruned by every new session (a second run would
    # delete this one's scratch projects), so each run gets one of its own, removed at the end. xdist gives each
    # worker a folder inside it; the workers' records for the checks at the end go there too.
    if not config.option.basetemp:
        config.option.basetemp = tempfile.mkdtemp(prefix=f"secure-postfix-tests-{INSTANCE}-")
        config.stash[_OWN_BASETEMP] = config.option.basetemp
    run_dir = Path(config.option.basetemp)
    run_dir.mkdir(parents=True, exist_ok=True)
    os.environ[session_checks.RUN_DIR_VARIABLE] = str(run_dir)
    config.stash[_PROCESS_WATCH] = session_checks.ProcessWatch.start(run_dir)


def pytest_testnodedown(node, error):
    """xdist (in the controller): a worker's figures join the run's summary, its bed the leftover check."""
    output = getattr(node, "workeroutput", {})
    node.config.stash.setdefault(FIGURES, []).extend(output.get("figures", []))
    node.config.stash.setdefault(_INSTANCES, []).extend(output.get("beds", []))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    # trylast: after pytest's own teardown of the session's fixtures (the bed is gone, its record written).
    config = session.config
    if _is_worker(config):
        config.workeroutput["figures"] = config.stash.get(FIGURES, [])
        config.workeroutput["beds"] = list(BUILT)
        return
    config.stash.setdefault(_INSTANCES, []).extend(BUILT)
    _end_of_run_checks(session)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    # Last: after pytest's own teardown, whose fixtures may still use the folder.
    own = config.stash.get(_OWN_BASETEMP, None)
    if own:
        shutil.rmtree(own, ignore_errors=True)


_CHECK_PROBLEMS = pytest.StashKey[list]()


def _end_of_run_checks(session):
    """Once per run, after the last test of every process: leftovers and the secret sweep fail the run."""
    config = session.config
    problems: list[str] = []
    run_dir = Path(os.environ[session_checks.RUN_DIR_VARIABLE])
    result = session_checks.sweep(session_checks.SweepRecord.load_all(run_dir))
    config.stash.setdefault(FIGURES, []).append(result.figure)
    problems += [f"secret sweep: {p}" for p in result.problems]
    if os.environ.get("TESTBED_KEEP") != "1":
        instances = sorted(set(config.stash.get(_INSTANCES, [])))
        watch = config.stash.get(_PROCESS_WATCH, session_checks.ProcessWatch())
        left = watch.leftovers()
        markers = [instance_names(i)[2] for i in instances]
        left += [p for p in session_checks.marked_processes(markers) if p not in left]
        bed_dirs = [str(bed_dir(i)) for i in instances]
        left += session_checks.bed_leftovers(instances, bed_dirs)
        watch.stop()
        problems += [f"left behind: {item}" for item in left]
        config.stash[FIGURES].append(
            f"leftover check: beds {', '.join(map(str, instances)) or 'none built'}, "
            f"{'process watch by cgroup' if watch.cgroup else 'process watch by environment only'}: "
            f"{len(left)} left behind"
        )
    config.stash[_CHECK_PROBLEMS] = problems
    if problems:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config):
    figures = config.stash.get(FIGURES, [])
    if figures:
        terminalreporter.section("figures")
        for line in figures:
            terminalreporter.write_line(line)
    problems = config.stash.get(_CHECK_PROBLEMS, [])
    if problems:
        terminalreporter.section("end-of-run checks FAILED", red=True)
        for line in problems:
            terminalreporter.write_line(line, red=True)
