"""A plugin's lifeline to the engine that started it.

The `pulumi` CLI starts its plugins (language host, program runner, provider) as its children and ends them when it
is done. If the CLI itself dies (SIGKILL, a crash, a closed terminal), nobody ends them: they would keep running,
and a provider would go on to apply the rest of the plan to hosts no engine will ever record. The kernel hands an
orphan to another parent, so a change of parent is the sign that the engine is gone.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable

POLL_SECONDS = 0.5


class InFlight:
    """Counts the operations running now, so that an orphaned plugin lets them finish before it exits."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    def __enter__(self) -> InFlight:
        with self._idle:
            self._count += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._idle:
            self._count -= 1
            self._idle.notify_all()

    def wait_idle(self) -> None:
        with self._idle:
            self._idle.wait_for(lambda: self._count == 0)


def watch_parent(name: str, before_exit: Callable[[], None] = lambda: None) -> threading.Thread:
    """Exit this process once its parent is gone, after `before_exit` (which may wait for work in flight)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(POLL_SECONDS)
        # stderr is a pipe to the dead engine: writing may fail, and must not stop the exit.
        with contextlib.suppress(OSError):
            print(
                f"{name}: the engine (pid {parent}) is gone; finishing the operation in flight, then exiting",
                file=sys.stderr,
                flush=True,
            )
        before_exit()
        os._exit(0)

    thread = threading.Thread(target=watch, name=f"{name}-lifeline", daemon=True)
    thread.start()
    return thread
