"""Where the provider plugin's time goes, for the benchmark: one line per call when TIMINGS_VARIABLE names a file.

Lines are `WHAT SECONDS`: `start` (from the process's start until the plugin serves: interpreter, SDK imports),
`load` (the SDK deserializing a provider, the first time: the import of its module), and one per gRPC call the
engine makes (Check, Diff, Create, Read, Update, Delete). Unset, nothing is wrapped and nothing is written.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

TIMINGS_VARIABLE = "SECURE_POSTFIX_PROVIDER_TIMINGS"


class Recorder:
    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, what: str, seconds: float) -> None:
        with self._lock, open(self.path, "a", encoding="ascii") as out:
            out.write(f"{what} {seconds:.6f}\n")

    def timed(self, what: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.write(what, time.perf_counter() - started)

        wrapper.__name__ = getattr(fn, "__name__", what)
        return wrapper


def recorder(environ: Mapping[str, str] = os.environ) -> Recorder | None:
    path = environ.get(TIMINGS_VARIABLE)
    return Recorder(path) if path else None


def since_process_start() -> float:
    """Seconds since this process started (the kernel's start time, to its clock tick)."""
    with open("/proc/self/stat", encoding="ascii") as stat:
        ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
    return time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")


def instrument(namespace: dict[str, Any], servicer: type, record: Recorder, operations: tuple[str, ...]) -> None:
    """Time the servicer's calls and the SDK's first load of each provider (the module's `get_provider`)."""
    for name in operations:
        setattr(servicer, name, record.timed(name, getattr(servicer, name)))
    loaded: set[str] = set()
    get_provider = namespace["get_provider"]

    def timed_get_provider(props: dict[str, Any], config: dict[str, Any]) -> Any:
        key = str(props.get("__provider", ""))
        if key in loaded:
            return get_provider(props, config)
        started = time.perf_counter()
        try:
            return get_provider(props, config)
        finally:
            loaded.add(key)
            record.write("load", time.perf_counter() - started)

    namespace["get_provider"] = timed_get_provider
