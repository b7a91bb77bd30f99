"""A worker's bed turned into hosts of other Debian releases for one module, and given back as it was after."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import pytest

from toolchain.testbed import TestBed, create, rootfs
from toolchain.testbed.lifecycle import host_releases


def adopt(bed: TestBed, fresh: TestBed) -> None:
    # The session fixture hands out one object; keep it pointing at live hosts.
    for item in dataclasses.fields(TestBed):
        setattr(bed, item.name, getattr(fresh, item.name))


@contextlib.contextmanager
def releases_bed(testbed: TestBed, releases: dict[str, str | None]) -> Iterator[TestBed]:
    """`testbed` with each host on its release (None: the machine's own), its previous releases back afterwards.
    The releases' trees must be in the cache already (scripts/setup.sh builds them): a test run downloads nothing."""
    missing = sorted({r for r in releases.values() if r is not None and not rootfs.is_built(r)})
    if missing:
        command = f"python -m toolchain.testbed rootfs {' '.join(missing)}"
        pytest.fail(f"no root file system of {', '.join(missing)}: run scripts/setup.sh (or `{command}`) first")
    before = host_releases(testbed)
    try:
        adopt(testbed, create(testbed.dir, releases=releases))
        yield testbed
    finally:
        adopt(testbed, create(testbed.dir, releases=before))
