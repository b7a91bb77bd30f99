"""Engine tests: what this process's part of the run leaves for the run's secret sweep."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.engine.harness import RECORD, haystacks
from tests.session_checks import RUN_DIR_VARIABLE, SweepRecord, worker_name


@pytest.fixture(scope="session", autouse=True)
def sweep_record(testbed):
    """After this process's last engine test, while its bed still runs: its record for the run's secret sweep."""
    yield
    RECORD.secret("test bed SSH client key", testbed.client_key_path.read_text())
    record = SweepRecord(
        worker_name(),
        dict(RECORD.secrets),
        haystacks(testbed),
        [(r.command, r.ok) for r in RECORD.commands],
    )
    record.save(Path(os.environ[RUN_DIR_VARIABLE]))
