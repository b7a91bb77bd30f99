"""A mail client's view of a test host: smtplib from the root namespace, bounded by timeouts."""

from __future__ import annotations

import smtplib
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

TIMEOUT = 15


@dataclass
class Attempt:
    code: int
    text: str


def connect(address: str, source: str, port: int = 25, timeout: float = TIMEOUT) -> smtplib.SMTP:
    """A client bound to `source` (anvil counts per client address)."""
    client = smtplib.SMTP(local_hostname="client.testbed.invalid", timeout=timeout, source_address=(source, 0))
    client._host = address  # starttls() needs the server name, connect() alone does not set it
    try:
        code, text = client.connect(address, port)
    except smtplib.SMTPServerDisconnected as exc:
        client.close()
        # smtplib reports a banner that never came as a disconnect; a throttled master is exactly that.
        if timed_out(exc):
            raise TimeoutError(f"no banner from {address}:{port} within {timeout:.0f} s") from exc
        raise
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


def tls_context(ca: Path | None = None) -> ssl.SSLContext:
    """A client's TLS settings. With `ca` (a test CA's certificate, such as the bed's `testbed.ca_path`) it checks
    the chain up to that CA and the name in subjectAltName as any current client does: the server must present a
    certificate that CA signed for the name or address the client connects to (smtplib's `_host`).

    Without `ca` the tests check the certificate themselves (its fingerprint): a self-signed one of
    tests/tls_files.make_cert is accepted.
    """
    context = ssl.create_default_context()
    if ca is not None:
        context.load_verify_locations(cafile=str(ca))
        return context
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def tls_at_most_1_1(address: str, source: str, port: int = 25) -> str:
    """What a client that offers TLS 1.0 and 1.1 only gets after STARTTLS: the version spoken, or OpenSSL's
    reason for the failed handshake (TLSV1_ALERT_PROTOCOL_VERSION when the server refuses both)."""
    context = tls_context()
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # this side's OpenSSL must not refuse them itself
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    client = connect(address, source, port)
    try:
        client.ehlo()
        client.starttls(context=context)
        return client.sock.version()
    except ssl.SSLError as exc:
        return exc.reason
    finally:
        client.close()


def auth_mechanisms(address: str, port: int, timeout: float = 5) -> set[str]:
    """The mechanisms Dovecot's auth listener offers in its handshake, as a client on the bridge sees them.

    ConnectionRefusedError when nothing listens there.
    """
    with socket.create_connection((address, port), timeout=timeout) as sock:
        sock.sendall(b"VERSION\t1\t2\nCPID\t1\n")
        data = b""
        while b"\nDONE" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"VERSION\t"), data[:80]
    return {ln.split("\t")[1] for ln in data.decode().splitlines() if ln.startswith("MECH\t")}


def refused(address: str, port: int, timeout: float = 5) -> bool:
    """True when a TCP connection to address:port is refused (nothing listens)."""
    try:
        socket.create_connection((address, port), timeout=timeout).close()
    except ConnectionRefusedError:
        return True
    return False


def timed_out(exc: BaseException) -> bool:
    """True when smtplib's SMTPServerDisconnected hides a read timeout (the server said nothing), not a close."""
    return isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError)
