"""Local test bed: three mail hosts in Linux namespaces on a private bridge.

`create()` builds (or reuses) the hosts mx, edge and auth, each with its own
sshd, Postfix and Dovecot; `destroy()` removes every trace of them. `fleet()`
adds up to 100 more Postfix hosts for a while (fleet mode).
"""

from .fleet import fleet, resize_fleet
from .lifecycle import create, destroy, load
from .model import Host, TestBed

__all__ = ["Host", "TestBed", "create", "destroy", "fleet", "load", "resize_fleet"]
