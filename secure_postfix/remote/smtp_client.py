"""The SMTP client of the probes: banner, EHLO, STARTTLS or TLS from the first byte, over a channel of the host.

The channel is a TCP connection the SSH session opened from the host itself, so the probe sees what a
mail client next to the host sees. A TLS session must be TLS 1.2 or newer and present exactly the
deployed certificate (compared by SHA-256 fingerprint). Everything a server says wrong is a ProbeError
naming the host.
"""

from __future__ import annotations

import contextlib
import hashlib
import ssl
import time
from collections.abc import Callable

from paramiko import Channel

from secure_postfix.core.smtp import Reply, SmtpProtocolError, take_reply
from secure_postfix.remote.ssh import RemoteError


class ProbeError(RemoteError):
    """The server did not answer as an SMTP server should."""


def banner_and_ehlo(
    chan: Channel, timeout: float, label: str, while_waiting: Callable[[], None], tls_fingerprint: str | None
) -> tuple[Reply, Reply]:
    """Banner and EHLO on `chan`; with `tls_fingerprint`, STARTTLS too, checked like `check_tls`."""
    buffer = b""
    banner, buffer = _read_reply(chan, buffer, timeout, label, "banner", while_waiting)
    if banner.code != 220:
        raise ProbeError(f"{label}: SMTP banner was {banner.code} {banner.text}")
    chan.sendall(b"EHLO secure-postfix.probe\r\n")
    ehlo, buffer = _read_reply(chan, buffer, timeout, label, "EHLO reply", while_waiting)
    if ehlo.code != 250:
        raise ProbeError(f"{label}: EHLO was answered {ehlo.code} {ehlo.text}")
    if tls_fingerprint is not None:
        _check_starttls(chan, buffer, timeout, label, tls_fingerprint)
    else:
        chan.sendall(b"QUIT\r\n")
    return banner, ehlo


def implicit_tls_banner(chan: Channel, timeout: float, label: str, fingerprint: str) -> Reply:
    """A submissions (465) listener: TLS from the first byte with the deployed certificate, then the banner."""
    return _tls_banner(chan, *check_tls(chan, timeout, label, fingerprint), timeout, label)


def _read_reply(
    chan: Channel, buffer: bytes, timeout: float, label: str, what: str, while_waiting: Callable[[], None]
) -> tuple[Reply, bytes]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply, buffer = take_reply(buffer)
        except SmtpProtocolError as exc:
            raise ProbeError(f"{label}: SMTP {what}: {exc}") from None
        if reply is not None:
            return reply, buffer
        if time.monotonic() > deadline:
            raise ProbeError(f"{label}: no SMTP {what} within {timeout:.0f} s")
        try:
            chunk = chan.recv(4096)
        except TimeoutError:
            while_waiting()
            continue
        if not chunk:
            raise ProbeError(f"{label}: the SMTP server closed the connection before its {what}")
        buffer += chunk


def _check_starttls(chan: Channel, buffer: bytes, timeout: float, label: str, fingerprint: str) -> None:
    chan.sendall(b"STARTTLS\r\n")
    reply, buffer = _read_reply(chan, buffer, timeout, label, "STARTTLS reply", lambda: None)
    if reply.code != 220:
        raise ProbeError(f"{label}: STARTTLS was answered {reply.code} {reply.text}")
    check_tls(chan, timeout, label, fingerprint)


def check_tls(
    chan: Channel, timeout: float, label: str, fingerprint: str
) -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    """A TLS handshake on `chan`: TLS 1.2 or newer, and exactly the deployed certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we compare the exact certificate instead
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing)
    deadline = time.monotonic() + timeout
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as exc:
            raise ProbeError(f"{label}: TLS handshake failed: {exc.reason or exc}") from None
        if outgoing.pending:
            chan.sendall(outgoing.read())
        if time.monotonic() > deadline:
            raise ProbeError(f"{label}: TLS handshake did not finish within {timeout:.0f} s")
        try:
            chunk = chan.recv(16384)
        except TimeoutError:
            continue
        if not chunk:
            raise ProbeError(f"{label}: the server closed the connection during the TLS handshake")
        incoming.write(chunk)
    if outgoing.pending:
        chan.sendall(outgoing.read())
    version = tls.version() or ""
    if version not in ("TLSv1.2", "TLSv1.3"):
        raise ProbeError(f"{label}: TLS session uses {version or 'an unknown protocol'}, not TLS 1.2 or newer")
    served = hashlib.sha256(tls.getpeercert(binary_form=True) or b"").digest().hex(":").upper()
    if served != fingerprint:
        raise ProbeError(f"{label}: Postfix serves certificate {served}, not the deployed {fingerprint}")
    return tls, incoming, outgoing


def _tls_banner(
    chan: Channel, tls: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, timeout: float, label: str
) -> Reply:
    """The SMTP banner read through an established TLS session on `chan`."""
    deadline, data = time.monotonic() + timeout, b""
    while True:
        with contextlib.suppress(ssl.SSLWantReadError):
            data += tls.read(4096)
        reply, _ = take_reply(data)
        if reply is not None:
            if reply.code != 220:
                raise ProbeError(f"{label}: SMTP banner over TLS was {reply.code} {reply.text}")
            if outgoing.pending:
                chan.sendall(outgoing.read())
            return reply
        if time.monotonic() > deadline:
            raise ProbeError(f"{label}: no SMTP banner over TLS within {timeout:.0f} s")
        try:
            chunk = chan.recv(16384)
        except TimeoutError:
            continue
        if not chunk:
            raise ProbeError(f"{label}: the server closed the connection before its banner over TLS")
        incoming.write(chunk)
