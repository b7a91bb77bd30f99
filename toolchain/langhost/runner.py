"""Runs the project's program in the project's own interpreter, for the language host's `Run`.

Started as `PYTHON -u runner.py` with the serialized RunRequest on stdin, so that neither the decrypted
config nor the secret keys sit in the command line or the environment. It needs only the standard library
and the Pulumi SDK of that interpreter (it does not import the `langhost` package), and sets the SDK up
the way the SDK's own inline runner does: the engine's settings, then the program under `run_in_stack`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import runpy
import signal
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

# The exit code that tells the host the program failed and already reported why through the engine.
BAIL = 32


def program_path(program_directory: str, entry_point: str) -> Path:
    """What to run: the folder itself (its `__main__.py`) for the usual `.`, else the named file or folder."""
    base = Path(program_directory)
    return base if entry_point in ("", ".") else base / entry_point


def runtime_options(request: Any) -> dict[str, Any]:
    """Keyword arguments of `pulumi.runtime.reset_options` taken from a RunRequest."""
    info = request.info
    return {
        "project": request.project,
        "stack": request.stack,
        "root_directory": info.root_directory or None,
        # The SDK's inline runner scales the engine's --parallel the same way.
        "parallel": max(request.parallel, 1) * 4,
        "engine_address": request.args[0] if request.args else "",
        "monitor_address": request.monitor_address,
        "preview": request.dryRun,
        "organization": request.organization or None,
    }


def _run(request: Any) -> int:
    import pulumi
    from pulumi import runtime

    options = runtime_options(request)
    runtime.reset_options(**options)
    runtime.set_all_config(dict(request.config), list(request.configSecretKeys) or None)

    info = request.info
    program_directory = info.program_directory or request.pwd
    target = program_path(program_directory, info.entry_point or request.program)
    # Imports such as `secure_postfix.stack.program` resolve against the program's folder, for the whole run:
    # applies and other callbacks import after the entry point has returned.
    sys.path.insert(0, program_directory)
    sys.argv = [str(target)]
    if request.pwd:
        os.chdir(request.pwd)

    # Faulted futures nobody awaited are expected when a program fails; the error is reported once, below.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.set_default_executor(ThreadPoolExecutor(max_workers=options["parallel"]))
    try:
        loop.run_until_complete(runtime.run_in_stack(lambda: runpy.run_path(str(target), run_name="__main__")))
    except pulumi.RunError as exc:
        pulumi.log.error(str(exc))
        return BAIL
    except Exception:
        pulumi.log.error(f"the program failed:\n{traceback.format_exc()}")
        return BAIL
    finally:
        _cancel_pending(loop)
        sys.stdout.flush()
        sys.stderr.flush()
    return 0


def _cancel_pending(loop: asyncio.AbstractEventLoop) -> None:
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.close()


def main() -> int:
    # Started as a file, Python put toolchain/langhost/ first on sys.path; the program must not see its modules.
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        del sys.path[0]
    # The engine ends its plugins' process group with SIGINT: end without a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        from pulumi.runtime.proto import language_pb2
    except ImportError:
        print(
            f"The Pulumi SDK is not installed for {sys.executable}: run scripts/setup.sh "
            "(or pip install -r requirements.txt in the project's virtualenv)",
            file=sys.stderr,
        )
        return 1
    request = language_pb2.RunRequest.FromString(sys.stdin.buffer.read())
    return _run(request)


if __name__ == "__main__":
    sys.exit(main())
