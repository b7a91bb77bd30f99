"""The contract with the roles swapped (release_contract.py says what runs).

mx: Debian 11 (Postfix 3.5, Dovecot 2.3.13 serving mx and auth over TCP); auth: Debian 12 (Postfix 3.7); edge:
Debian 13 (Postfix 3.10, Dovecot 2.4 over the UNIX socket).
"""

import pytest

from tests.engine.release_contract import Layout, TestEveryRelease, bed, cert, layout, password, project  # noqa: F401

pytestmark = [pytest.mark.engine, pytest.mark.long(150)]

LAYOUT = Layout(mx="bullseye", edge="trixie")
