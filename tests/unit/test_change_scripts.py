"""The two host-side commands that open and close a main.cf change, run here on files of the test's own.

Opening: main.cf still the file the facts read (else nothing at all is written), backups beside each file, then the
ledger with the pending record, atomically. Closing: the ledger written (or removed when nothing is left in it),
then every backup in one `rm`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from secure_postfix.remote.postfix_host import BEGIN_CHANGE_SCRIPT, END_CHANGE_SCRIPT, MAIN_CF_CHANGED
from secure_postfix.remote.ssh import ATOMIC_WRITE

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the ledger's write wants a root-owned folder")

LEDGER_TEXT = '{\n "pending": {"owner": "postfix:test"},\n "version": 1\n}\n'


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    folder = tmp_path / "postfix"
    folder.mkdir(mode=0o755)
    (folder / "main.cf").write_text("message_size_limit = 1\n")
    (folder / "tls").mkdir(mode=0o755)
    (folder / "tls" / "pair.pem").write_text("KEY\nCERT\n")
    return folder


def begin(etc: Path, expect: str, ledger: str = LEDGER_TEXT) -> subprocess.CompletedProcess[bytes]:
    data = ledger.encode()
    args = [str(etc / "main.cf"), expect, str(etc / "ledger.json"), str(len(data)), digest(data), ATOMIC_WRITE]
    files = [str(etc / "main.cf"), str(etc / "tls" / "pair.pem")]
    argv = ["sh", "-c", BEGIN_CHANGE_SCRIPT, "sh", *args, *files]
    return subprocess.run(argv, input=data, capture_output=True, timeout=30)


def end(etc: Path, ledger: str | None) -> subprocess.CompletedProcess[bytes]:
    data = (ledger or "").encode()
    size, sha = ("-", "-") if ledger is None else (str(len(data)), digest(data))
    files = [str(etc / "main.cf"), str(etc / "tls" / "pair.pem")]
    argv = ["sh", "-c", END_CHANGE_SCRIPT, "sh", str(etc / "ledger.json"), size, sha, ATOMIC_WRITE, *files]
    return subprocess.run(argv, input=data, capture_output=True, timeout=30)


def backups(etc: Path) -> list[str]:
    return sorted(str(p.relative_to(etc)) for p in etc.rglob("*.secure-postfix-prev"))


def test_opening_backs_up_each_file_then_records_the_change(etc):
    result = begin(etc, digest((etc / "main.cf").read_bytes()))
    assert result.returncode == 0, result.stderr
    assert backups(etc) == ["main.cf.secure-postfix-prev", "tls/pair.pem.secure-postfix-prev"]
    assert (etc / "main.cf.secure-postfix-prev").read_text() == "message_size_limit = 1\n"
    assert (etc / "ledger.json").read_text() == LEDGER_TEXT
    assert oct((etc / "ledger.json").stat().st_mode & 0o777) == "0o600"


def test_a_main_cf_changed_since_the_facts_stops_it_before_any_write(etc):
    result = begin(etc, digest(b"what the facts read\n"))
    assert result.returncode == MAIN_CF_CHANGED
    assert b"changed since it was read" in result.stderr
    assert backups(etc) == [] and not (etc / "ledger.json").exists()


def test_without_a_digest_as_read_there_is_no_compare(etc):
    assert begin(etc, "").returncode == 0
    assert (etc / "ledger.json").read_text() == LEDGER_TEXT


def test_a_ledger_that_arrives_short_is_not_written_and_says_so(etc):
    data = LEDGER_TEXT.encode()
    args = [str(etc / "main.cf"), "", str(etc / "ledger.json"), str(len(data) + 5), digest(data), ATOMIC_WRITE]
    result = subprocess.run(["sh", "-c", BEGIN_CHANGE_SCRIPT, "sh", *args], input=data, capture_output=True)
    assert result.returncode == 65 and b"arrived" in result.stderr
    assert not (etc / "ledger.json").exists()


def test_closing_writes_the_ledger_then_drops_every_backup(etc):
    begin(etc, "")
    result = end(etc, '{"version": 1}\n')
    assert result.returncode == 0, result.stderr
    assert (etc / "ledger.json").read_text() == '{"version": 1}\n'
    assert backups(etc) == []


def test_closing_with_nothing_left_removes_the_ledger(etc):
    begin(etc, "")
    assert end(etc, None).returncode == 0
    assert not (etc / "ledger.json").exists() and backups(etc) == []


def test_closing_drops_the_backups_in_one_rm(etc, tmp_path):
    """One command for all of them, as before the fold: the fault suite's cut at the cleanup waits for it."""
    begin(etc, "")
    tools = tmp_path / "stand-ins"
    tools.mkdir()
    log = tmp_path / "rm.log"
    (tools / "rm").write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec /bin/rm "$@"\n')
    (tools / "rm").chmod(0o755)
    files = [str(etc / "main.cf"), str(etc / "tls" / "pair.pem")]
    argv = ["sh", "-c", END_CHANGE_SCRIPT, "sh", str(etc / "ledger.json"), "-", "-", ATOMIC_WRITE, *files]
    subprocess.run(argv, env={"PATH": f"{tools}:{os.environ['PATH']}"}, check=True, capture_output=True)
    assert log.read_text().splitlines()[-1] == "-f -- " + " ".join(f + ".secure-postfix-prev" for f in files)
