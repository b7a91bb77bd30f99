"""Dovecot's auth protocol, spoken from a host through its SSH session: who answers at an auth address.

Both sides use it: the Dovecot resource checks its own listener, the Postfix resource checks that
smtpd_sasl_path leads to one before pointing smtpd at it.
"""

from __future__ import annotations

import time

from paramiko import SSHException

from secure_postfix.core.host_output import NotDovecotAuth, auth_handshake_mechanisms
from secure_postfix.remote.ssh import RemoteError, Session


class DovecotError(RemoteError):
    """Dovecot refused a configuration or its auth service did not answer."""


def auth_handshake(session: Session, address: str, port: int, timeout: float = 5.0) -> set[str]:
    """Speak the first turn of Dovecot's auth protocol from the host; returns the mechanisms offered.

    The whole handshake must be over within `timeout`, even from a server that trickles bytes.
    Raises DovecotError when something else (or nothing in time) answers there, RemoteError when
    nothing listens.
    """
    label = session.target.label
    deadline = time.monotonic() + timeout
    chan = session.open_tcp(address, port, timeout=timeout)
    try:
        chan.sendall(b"VERSION\t1\t2\nCPID\t1\n")
        data = b""
        while (offered := auth_handshake_mechanisms(data)) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            chan.settimeout(left)
            chunk = chan.recv(4096)
            if not chunk:
                raise DovecotError(f"{label}: {address}:{port} closed the connection during the auth handshake")
            data += chunk
    except NotDovecotAuth as other:
        raise DovecotError(
            f"{label}: {address}:{port} is not Dovecot's auth service (it answered {str(other)!r})"
        ) from None
    except TimeoutError:
        raise DovecotError(f"{label}: no complete auth handshake from {address}:{port} within {timeout:g} s") from None
    except (OSError, SSHException, EOFError) as exc:
        raise DovecotError(f"{label}: the auth handshake with {address}:{port} failed: {exc}") from None
    finally:
        chan.close()
    return offered
