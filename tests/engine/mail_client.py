"""A mail client's view of a test host: smtplib from the root namespace, bounded by timeouts."""

from __future__ import annotations

import smtplib
import socket
import ssl
from dataclasses import dataclass

TIMEOUT = 15


@dataclass
class Attempt:
    code: int
    text: str


def connect(address: str, source: str, port: int = 25) -> smtplib.SMTP:
    """A client bound to `source` (anvil counts per client address)."""
    client = smtplib.SMTP(local_hostname="client.testbed.invalid", timeout=TIMEOUT, source_address=(source, 0))
    client._host = address  # starttls() needs the server name, connect() alone does not set it
    code, text = client.connect(address, port)
    if code != 220:
        client.close()
        raise smtplib.SMTPConnectError(code, text)
    return client


def banner(address: str, source: str, port: int = 25) -> Attempt:
    """The greeting a new connection gets (421 when a limit bites)."""
    sock = socket.create_connection((address, port), timeout=TIMEOUT, source_address=(source, 0))
    try:
        data = b""
        while not data.endswith(b"\r\n") or data.split(b"\r\n")[-2][3:4] == b"-":
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        line = data.decode(errors="replace").strip().splitlines()[-1] if data else "000 closed without a banner"
        sock.sendall(b"QUIT\r\n")
        return Attempt(int(line[:3]), line[4:])
    finally:
        sock.close()


def ehlo_lines(client: smtplib.SMTP) -> list[str]:
    code, text = client.ehlo()
    assert code == 250, (code, text)
    return text.decode().splitlines()


def tls_context() -> ssl.SSLContext:
    """Tests check the certificate themselves; the host name is a lab name."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
