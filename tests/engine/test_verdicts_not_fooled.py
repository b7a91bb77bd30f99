"""A mail client cannot make an apply roll back by putting a daemon's words into the mail log.

Postfix logs what clients send (`helo=<fatal:>`, `from=<panic:@…>`): the verdicts read the severity at its
fixed place after the program's tag, so an apply during such a client's visits lands.
"""

from __future__ import annotations

import smtplib
import threading
import time

import pytest

from tests.engine import mail_client
from tests.engine.harness import EngineProject, bed_config, log_offset, log_since

pytestmark = pytest.mark.engine

HOST = "mx"


def sites(rate: int) -> dict:
    return {"solo": {"postfix_host": HOST, "limits": {"smtpd_client_connection_rate_limit": rate}}}


def impostor(address: str, source: str, stop: threading.Event) -> None:
    """EHLO fatal: and a refused relay with panic: and fatal: in the addresses, every half second (at most 90 s)."""
    deadline = time.monotonic() + 90
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            client = mail_client.connect(address, source, timeout=5)
            try:
                client.ehlo("fatal:")
                client.mail("<panic:@example.invalid>")
                client.rcpt("<fatal:@example.invalid>")  # refused: not ours to relay, and logged with the HELO
            finally:
                client.close()
        except (OSError, smtplib.SMTPException):
            pass
        stop.wait(0.5)


@pytest.fixture(scope="module")
def project(testbed, tmp_path_factory):
    project = EngineProject(tmp_path_factory.mktemp("impostor-text"), "impostortext")
    project.configure(bed_config(testbed, sites(30), [HOST]))
    first = project.up()
    assert first.ok, first.text
    yield project
    destroyed = project.destroy()
    assert destroyed.ok, destroyed.text


def test_an_apply_lands_while_a_client_logs_fatal_and_panic(testbed, project):
    address = testbed.hosts[HOST].address
    offset = log_offset(testbed, HOST)
    stop = threading.Event()
    visitor = threading.Thread(target=impostor, args=(address, testbed.client_addresses[3], stop), daemon=True)
    visitor.start()
    try:
        time.sleep(1.5)  # the client's lines are in the log before and during the apply
        project.configure(bed_config(testbed, sites(20), [HOST]))
        run = project.up()
    finally:
        stop.set()
        visitor.join(timeout=30)
    logged = log_since(testbed, HOST, offset)
    assert "helo=<fatal:>" in logged, logged[-2000:]  # the client's text did reach the log
    assert run.ok, run.text
    assert "rolled back" not in run.text.lower() and "mail log says" not in run.text
    assert testbed.run(HOST, "postconf -h smtpd_client_connection_rate_limit").stdout.strip() == "20"
