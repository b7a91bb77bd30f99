"""master.cf entries grouped as Postfix groups them: the parser against Postfix's own reader, on fuzzed files.

Hypothesis writes master.cf files out of entry lines, `-o` continuation lines, comments at the margin and
indented, blank and whitespace-only lines, and lines with a carriage return or a form feed in them. For each,
`postconf -c DIR -M` (this machine's Postfix) prints every entry as one line, as the daemons read it; the
parser's entries, each as `one_line`, must be the same list, field for field.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secure_postfix.core import mastercf

POSTCONF = shutil.which("postconf") or "/usr/sbin/postconf"
pytestmark = pytest.mark.skipif(not Path(POSTCONF).exists(), reason="Postfix's postconf is not installed")

_BLANKS = st.sampled_from([" ", "\t", "  ", " \t"])
_NAME = st.sampled_from(["smtpd_tls_security_level", "syslog_name", "smtpd_relay_restrictions", "x"])
_VALUE = st.sampled_from(["encrypt", "postfix/submission", "permit_mynetworks,permit", "1"])
_COMMENT = st.builds(lambda pad, text: f"{pad}#{text}\n", st.sampled_from(["", " ", "\t", "  "]), st.just("  -o a=b"))
_EMPTY = st.sampled_from(["\n", " \n", "\t\n", " \f\n", "\r\n"])
_OPTION = st.builds(
    lambda pad, n, v, end: f"{pad}-o {n}={v}{end}", _BLANKS, _NAME, _VALUE, st.sampled_from(["\n", "\r\n"])
)


@st.composite
def master_cf(draw) -> str:
    lines: list[str] = []
    names = draw(
        st.lists(st.sampled_from(["smtp", "submission", "submissions", "587", "relay"]), unique=True, max_size=4)
    )
    for name in names:
        lines += draw(st.lists(st.one_of(_COMMENT, _EMPTY), max_size=2))
        lines.append(f"{name} inet n - y - - smtpd\n")
        lines += draw(st.lists(st.one_of(_OPTION, _COMMENT, _EMPTY), max_size=5))
    return "".join(lines)


def as_postfix_reads(text: str, folder: Path) -> list[str]:
    (folder / "master.cf").write_text(text)
    (folder / "main.cf").touch()
    # Postfix waits for a main.cf younger than about two seconds to grow old, in case it is still being written.
    past = time.time() - 10
    for name in ("main.cf", "master.cf"):
        os.utime(folder / name, (past, past))
    out = subprocess.run(
        [POSTCONF, "-c", str(folder), "-M"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    return [" ".join(line.split()) for line in out.splitlines() if line.strip()]


@settings(
    max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=master_cf())
def test_each_entry_is_what_postfix_reads(text, tmp_path):
    assert [mastercf.one_line(e.text) for e in mastercf.parse(text)] == as_postfix_reads(text, tmp_path)


def test_the_half_commented_sample_is_read_as_postfix_reads_it(tmp_path):
    text = (
        "submission inet n - y - - smtpd\n"
        "  -o syslog_name=postfix/submission\n"
        "#  -o smtpd_tls_security_level=encrypt\n"
        "\n"
        "  -o smtpd_relay_restrictions=permit_mynetworks,permit\n"
    )
    assert [mastercf.one_line(e.text) for e in mastercf.parse(text)] == as_postfix_reads(text, tmp_path)
