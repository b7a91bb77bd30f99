"""PostfixConfig refuses an smtpd_sasl_path with no Dovecot auth service behind it (provider against a real host)."""

from __future__ import annotations

import pytest

from secure_postfix.postfix_config import ApplyError, PostfixConfigProvider, checked_inputs
from tests.tls_files import make_cert
from toolchain.testbed.layout import SUBNET

pytestmark = pytest.mark.engine

HOST = "edge"


def props(testbed, tmp_path, sasl_path: str) -> dict:
    cert, key = make_cert(tmp_path, testbed.hosts[HOST].hostname)
    return checked_inputs(
        {
            "host": testbed.hosts[HOST].address,
            "port": 22,
            "user": "root",
            "host_key": testbed.hosts[HOST].host_key,
            "private_key": testbed.client_key_path.read_text(),
            "sasl": {"path": sasl_path},
            "tls": {"cert_pem": cert.read_text()},
            "tls_key_pem": key.read_text(),
        }
    )


@pytest.mark.parametrize(
    ("sasl_path", "reason"),
    [
        (f"inet:{SUBNET}13:12399", f"nothing answers at {SUBNET}13:12399"),
        (f"inet:{SUBNET}13:22", "is not Dovecot's auth service"),
        ("private/no-such-auth", "there is no socket at /var/spool/postfix/private/no-such-auth"),
    ],
    # Names without the bed's subnet: every test worker (each on a bed of its own) must collect the same tests.
    ids=["closed-port", "not-dovecot", "no-socket"],
)
def test_unreachable_auth_service_is_refused_before_any_change(testbed, tmp_path, sasl_path, reason):
    before = testbed.run(HOST, "sha256sum /etc/postfix/main.cf; ls /etc/postfix").stdout
    with pytest.raises(ApplyError) as refused:
        PostfixConfigProvider().create(props(testbed, tmp_path, sasl_path))
    message = str(refused.value)
    assert reason in message and "Nothing was changed" in message and testbed.hosts[HOST].address in message
    assert testbed.run(HOST, "sha256sum /etc/postfix/main.cf; ls /etc/postfix").stdout == before
