"""Load: a flood of 200 connections within a minute from one client is turned away after the limit, while a client
in the exceptions is served every time.

The limits are applied through the engine; the flood is a bounded loop from one of the bed's client addresses to the
bed's own host (test_postfix_limits.py shows the fourth connection of three refused; this is the same rule under a
flood, with the exceptions list holding a client of the bed).
"""

from __future__ import annotations

import time

import pytest

from tests.engine import mail_client
from tests.engine.harness import EngineProject, bed_config

pytestmark = pytest.mark.engine

HOST = "mx"
LIMIT = 20
FLOOD = 200
EVERY = 4  # the exempt client connects once for every EVERY connections of the flood: 50 times, over the limit


def test_flood_is_answered_421_after_the_limit_while_an_exempt_client_is_served(testbed, tmp_path):
    flooder, exempt = testbed.client_addresses[35], testbed.client_addresses[36]
    limits = {
        "smtpd_client_connection_rate_limit": LIMIT,
        "anvil_rate_time_unit": "60s",
        # The host's own loopback stays exempt too, so the apply's probe never counts against anyone.
        "smtpd_client_event_limit_exceptions": f"$mynetworks, {exempt}/32",
    }
    project = EngineProject(tmp_path / "flood", "flood")
    project.configure(bed_config(testbed, {"flood": {"postfix_host": HOST, "limits": limits}}, [HOST]))
    address = testbed.hosts[HOST].address
    try:
        assert (run := project.up()).ok, run.text
        flood, served = [], []
        started = time.monotonic()
        for i in range(FLOOD):
            flood.append(mail_client.banner(address, flooder))
            if i % EVERY == 0:
                served.append(mail_client.banner(address, exempt))
        took = time.monotonic() - started
        codes = [a.code for a in flood]
        greeted = [a.code for a in served].count(220)
        print(
            f"\nflood: {FLOOD} connections in {took:.1f} s: {codes.count(220)} greeted, {codes.count(421)} "
            f"answered 421; exempt client greeted {greeted} of {len(served)}"
        )
        assert took < 60, took
        assert codes == [220] * LIMIT + [421] * (FLOOD - LIMIT), flood
        assert all("too many connections" in a.text for a in flood[LIMIT:]), flood[LIMIT]
        assert [a.code for a in served] == [220] * len(served), served
    finally:
        destroyed = project.destroy()
    assert destroyed.ok, destroyed.text
