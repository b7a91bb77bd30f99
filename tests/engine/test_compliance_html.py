"""The HTML report in headless Chromium (Debian's package): the screenshot shows the hosts x rules matrix."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from secure_postfix.core import compliance as c
from secure_postfix.core import compliance_render as render
from tests.unit.test_compliance import DEBIAN_HOST, GUIDE_MAIN_CF

pytestmark = pytest.mark.engine


def decode_png(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """Width, height, bytes per pixel and rows of an 8-bit RGB(A) PNG, as Chromium writes it."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    assert header is not None
    width, height, depth, colour_type = header[:4]
    assert depth == 8 and colour_type in (2, 6), header
    bpp = 3 if colour_type == 2 else 4
    raw, stride, rows, prev, i = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp), 0
    for _ in range(height):
        kind, line = raw[i], bytearray(raw[i + 1 : i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            up_left = prev[x - bpp] if x >= bpp else 0
            if kind == 1:
                line[x] = (line[x] + a) & 255
            elif kind == 2:
                line[x] = (line[x] + b) & 255
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - up_left
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - up_left)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else up_left)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def screenshot_rows(page: str, folder: Path, name: str) -> tuple[int, list[bytes]]:
    """Bytes per pixel and rows of the page as headless Chromium draws it (1400 x 1000, scale 1)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("needs Debian's chromium package (scripts/setup.sh installs it)")
    html, png = folder / f"{name}.html", folder / f"{name}.png"
    html.write_text(page)
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--window-size=1400,1000",
            f"--screenshot={png}",
            html.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    _, _, bpp, rows = decode_png(png.read_bytes())
    return bpp, rows


def screenshot(page: str, folder: Path, name: str) -> Counter:
    """Pixels per colour of the page as headless Chromium draws it."""
    bpp, rows = screenshot_rows(page, folder, name)
    return Counter(row[x : x + 3] for row in rows for x in range(0, len(row), bpp))


def cell_as_seen_without_colour(page: str, folder: Path, name: str, colour: str) -> list[str]:
    """The matrix's one cell, from the top of its colour down to 24 pixels below it, as ink (dark) or paper
    (light): what a reader who cannot tell the colours apart still sees."""
    bpp, rows = screenshot_rows(page, folder, name)
    want = bytes.fromhex(colour[1:])
    runs = []  # per row: the left end of its run of exactly 28 pixels of that colour, or None
    for row in rows:
        xs = [x // bpp for x in range(0, len(row), bpp) if row[x : x + 3] == want]
        runs.append(xs[0] if len(xs) == 28 and xs[-1] - xs[0] == 27 else None)
    # The swatch: 28 rows of such runs at one left end (the legend's patch of that colour is wider, with text).
    top = next(y for y in range(len(runs) - 28) if runs[y] is not None and len(set(runs[y : y + 28])) == 1)
    left = runs[top]
    shape = []
    for row in rows[top : top + 28 + 24]:
        pixels = [row[x * bpp : x * bpp + 3] for x in range(left, left + 28)]
        shape.append("".join("#" if 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2] < 128 else "." for p in pixels))
    return shape


def status_areas(page: str, folder: Path, name: str) -> dict[c.Status, int]:
    """Pixels drawn in each status colour by the matrix (the legend's share taken off)."""
    legend = screenshot(render.html({}), folder, f"{name}-legend")
    shot = screenshot(page, folder, name)
    return {s: shot[bytes.fromhex(col[1:])] - legend[bytes.fromhex(col[1:])] for s, col in render.COLOURS.items()}


def cell_area(areas: dict[c.Status, int], report) -> float:
    cells = sum(len(findings) for findings in report.values())
    return sum(areas.values()) / cells


def test_screenshot_shows_one_coloured_cell_per_host_and_rule(tmp_path):
    report = {
        "mx": c.judge({**GUIDE_MAIN_CF, "queue_minfree": "100"}),
        "edge": c.judge({"smtpd_client_connection_rate_limit": "0"}, public_mx=False),
    }
    areas = status_areas(render.html(report), tmp_path, "matrix")
    per_cell = cell_area(areas, report)
    assert per_cell >= 28 * 28, areas  # every cell is a visible block of its own
    for status in c.Status:
        expected = sum(1 for findings in report.values() for f in findings if f.status is status)
        assert areas[status] == expected * per_cell, (status, areas)
    assert areas[c.Status.FAIL] == 2 * per_cell  # mx's queue_minfree, edge's rate limit


def test_screenshot_of_an_all_pass_host_has_no_red(tmp_path):
    report = {"mx": c.judge({**GUIDE_MAIN_CF, "smtpd_banner": "$myhostname ESMTP"}, host=DEBIAN_HOST)}
    areas = status_areas(render.html(report), tmp_path, "clean")
    assert areas[c.Status.FAIL] == 0
    assert areas[c.Status.PASS] == 13 * cell_area(areas, report)


def test_pass_and_fail_cells_differ_without_their_colours(tmp_path):
    """Red and green are close in lightness: a red-green colour-blind reader tells the cells apart by their marks."""
    finding = c.judge(GUIDE_MAIN_CF)[0]
    shapes = {}
    for status in (c.Status.PASS, c.Status.FAIL):
        page = render.html({"mx": [replace(finding, status=status)]})
        shapes[status] = cell_as_seen_without_colour(page, tmp_path, status.name, render.COLOURS[status])
    assert shapes[c.Status.PASS] != shapes[c.Status.FAIL], "\n".join(shapes[c.Status.PASS])
    # Both colours read as ink: without the marks the two cells would be the same block.
    assert shapes[c.Status.PASS][:28] == shapes[c.Status.FAIL][:28] == ["#" * 28] * 28
