"""The contract on Debian 13 as the shared auth host and Debian 11 on its own (release_contract.py says what runs).

mx: Debian 13 (Postfix 3.10, Dovecot 2.4 serving mx and auth over TCP); auth: Debian 12 (Postfix 3.7); edge:
Debian 11 (Postfix 3.5, Dovecot 2.3.13 over the UNIX socket).
"""

import pytest

from tests.engine.release_contract import Layout, TestEveryRelease, bed, cert, layout, password, project  # noqa: F401

pytestmark = [pytest.mark.engine, pytest.mark.long(150)]

LAYOUT = Layout(mx="trixie", edge="bullseye")
