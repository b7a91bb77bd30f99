"""Local test bed: three mail hosts in Linux namespaces on a private bridge.

`create()` builds (or reuses) the hosts mx, edge and auth, each with its own
sshd, Postfix and Dovecot; `destroy()` removes every trace of them.
"""

from .lifecycle import create, destroy, load
from .model import Host, TestBed

__all__ = ["Host", "TestBed", "create", "destroy", "load"]
