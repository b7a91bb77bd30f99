"""Mail served while an operation runs: fresh SMTP connections to every host, every 50 ms, counted."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

PERIOD = 0.05
# Each connection costs the host an smtpd session: on a 2-core machine, a hundred hosts tried every 50 ms
# (2000 a second) would measure the monitor, not the operation. Beyond this rate each host is tried less often.
MAX_RATE = 40.0
TIMEOUT = 2.0


def sweep_period(hosts: int) -> float:
    """Seconds between two tries of one host: 50 ms, or longer when that would exceed MAX_RATE."""
    return max(PERIOD, hosts / MAX_RATE)


@dataclass
class Tally:
    attempts: int = 0
    failed: int = 0


def greet(address: str, source: str, timeout: float = TIMEOUT) -> bool:
    """One fresh connection: True when the host greets with 220."""
    try:
        with socket.create_connection((address, 25), timeout=timeout, source_address=(source, 0)) as sock:
            sock.settimeout(timeout)
            line = sock.makefile("rb").readline(512)
            if line.startswith(b"220"):
                sock.sendall(b"QUIT\r\n")
                return True
            return False
    except OSError:  # refused, reset or timed out
        return False


class MailMonitor:
    """A client at `source` (one the limits exempt) connecting to each address in turn, one sweep per
    `sweep_period`: every 50 ms up to two hosts, then at MAX_RATE connections a second in all."""

    def __init__(self, addresses: Sequence[str], source: str):
        self.addresses = list(addresses)
        self.source = source
        self.tally = Tally()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> MailMonitor:
        self._thread = threading.Thread(target=self._loop, name="mail-monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        gap = sweep_period(len(self.addresses)) / max(1, len(self.addresses))
        while not self._stop.is_set():
            for address in self.addresses:
                started = time.monotonic()
                ok = greet(address, self.source)
                self.tally.attempts += 1
                self.tally.failed += 0 if ok else 1
                if self._stop.wait(max(0.0, gap - (time.monotonic() - started))):
                    return
