"""Serves the Python SDK's own dynamic provider, with a thread pool of the user's size.

`python -m pulumi.dynamic` (what the official plugin script runs) builds its gRPC server around
`ThreadPoolExecutor(max_workers=4)`: the engine then applies at most four resources at once, whatever
`--parallel` says, and a fleet of hosts converges four at a time. This runs the SDK's very module with
only that number changed, so the servicer, the port printed on stdout (the plugin handshake) and the
shutdown on SIGINT stay the SDK's own.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import os
import sys
import types
from collections.abc import Mapping

from toolchain.providerhost import lifeline, timings

THREADS_VARIABLE = "SECURE_POSTFIX_PROVIDER_THREADS"
# Each operation mostly waits on its SSH connection; 32 lets a fleet's hosts apply together while the
# controller's CPU still keeps up with that many SSH handshakes.
DEFAULT_THREADS = 32
MAX_THREADS = 1024
SDK_MODULE = "pulumi.dynamic.__main__"


class ThreadsError(ValueError):
    pass


class SdkShapeError(RuntimeError):
    pass


def threads_from(environ: Mapping[str, str]) -> int:
    """The pool size from the environment; refuses anything but a whole number within bounds."""
    raw = environ.get(THREADS_VARIABLE)
    if raw is None or raw == "":
        return DEFAULT_THREADS
    text = raw.strip()
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_THREADS):
        raise ThreadsError(
            f"{THREADS_VARIABLE} must be a whole number from 1 to {MAX_THREADS} (how many resource operations "
            f"the dynamic provider runs at once; default {DEFAULT_THREADS}), not {raw!r}"
        )
    return int(text)


def _sdk_label() -> str:
    try:
        return f"pulumi {importlib.metadata.version('pulumi')}"
    except importlib.metadata.PackageNotFoundError:
        return "the pulumi SDK"


def _is_main_call(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
        and node.value.func.id == "main"
    )


def _pool_keywords(main: ast.FunctionDef) -> list[ast.keyword]:
    found = []
    for node in ast.walk(main):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == (
            "ThreadPoolExecutor"
        ):
            found += [kw for kw in node.keywords if kw.arg == "max_workers"]
    return found


def with_pool_size(source: str, threads: int, filename: str = SDK_MODULE) -> ast.Module:
    """The SDK module's tree with its server pool set to `threads` workers.

    Refuses (SdkShapeError) an SDK whose module no longer has that shape: one `main()` whose gRPC server
    takes `ThreadPoolExecutor(max_workers=...)`, called once at the end. A silent mismatch would serve
    with the SDK's own cap again.
    """
    tree = ast.parse(source, filename)
    mains = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
    keywords = _pool_keywords(mains[0]) if len(mains) == 1 else []
    if len(keywords) != 1 or not tree.body or not _is_main_call(tree.body[-1]):
        raise SdkShapeError(
            f"{filename} of {_sdk_label()} no longer builds its server as main() with "
            "ThreadPoolExecutor(max_workers=...); the provider plugin (providerhost) needs updating for it"
        )
    keywords[0].value = ast.copy_location(ast.Constant(threads), keywords[0].value)
    return tree


def run_sdk_provider(threads: int) -> None:
    """Run the SDK's dynamic provider host as `python -m pulumi.dynamic` would, with `threads` workers."""
    spec = importlib.util.find_spec(SDK_MODULE)
    if spec is None or spec.origin is None or spec.loader is None:
        raise SdkShapeError(f"{SDK_MODULE} is not importable from {sys.executable}")
    source = spec.loader.get_source(SDK_MODULE)  # type: ignore[attr-defined]
    tree = with_pool_size(source, threads, spec.origin)
    # The module's last statement calls main(): run the rest first, so that its servicer can be wrapped.
    tree.body.pop()
    code = compile(tree, spec.origin, "exec")
    # The same namespace `-m` gives the module: it is __main__, and the program's own folder (the working
    # directory the engine starts the plugin in) comes first on sys.path, where the providers' modules are.
    module = types.ModuleType("__main__")
    module.__dict__.update(__file__=spec.origin, __package__="pulumi.dynamic", __spec__=spec, __loader__=spec.loader)
    sys.modules["__main__"] = module
    sys.path[0] = os.getcwd()
    exec(code, module.__dict__)
    # Every operation counted while it runs: if the engine dies, the one in flight finishes (its host's change is
    # completed or rolled back), then the plugin exits instead of serving an engine that is gone.
    in_flight = lifeline.InFlight()
    servicer = module.__dict__["DynamicResourceProviderServicer"]
    record = timings.recorder()
    if record is not None:
        timings.instrument(module.__dict__, servicer, record, OPERATIONS)
    count_operations(servicer, in_flight)
    lifeline.watch_parent("pulumi-resource-pulumi-python", in_flight.wait_idle)
    if record is not None:
        record.write("start", timings.since_process_start())
    module.__dict__["main"]()


# The servicer's calls that may act on a host.
OPERATIONS = ("Check", "Diff", "Create", "Read", "Update", "Delete")


def count_operations(servicer: type, in_flight: lifeline.InFlight) -> None:
    """Wrap the SDK servicer's operations so that `in_flight` counts those running."""
    for name in OPERATIONS:
        setattr(servicer, name, _counted(getattr(servicer, name), in_flight))


def _counted(method, in_flight: lifeline.InFlight):
    def counted(self, *args, **kwargs):
        with in_flight:
            return method(self, *args, **kwargs)

    counted.__name__ = method.__name__
    return counted


def main() -> int:
    try:
        threads = threads_from(os.environ)
        run_sdk_provider(threads)
    except (ThreadsError, SdkShapeError) as exc:
        print(f"pulumi-resource-pulumi-python: {exc}", file=sys.stderr)
        return 2
    return 0
