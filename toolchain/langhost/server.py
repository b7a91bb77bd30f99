"""The LanguageRuntime gRPC service the CLI calls, served with the stubs of the Python SDK.

Methods the CLI calls for preview/up/refresh/destroy/config/stack: GetPluginInfo, GetRequiredPackages
(GetRequiredPlugins on older CLIs), Run, About (update metadata) and, for `pulumi about`/`install`,
GetProgramDependencies and InstallDependencies. RunPlugin starts a Python policy pack
(`--policy-pack DIR`). Handshake (only when the CLI attaches to a running host) and Cancel are answered
too. Code generation (GenerateProject/Package/Program, Pack, Link, Template, RuntimeOptionsPrompts) stays
UNIMPLEMENTED, which the CLI treats as "not supported by this language".
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format
from pulumi.runtime.proto import language_pb2, language_pb2_grpc, plugin_pb2

from toolchain.langhost import interpreter
from toolchain.langhost.runner import BAIL
from toolchain.providerhost import lifeline

RUNNER = Path(__file__).resolve().parent / "runner.py"
# Config and checkpoints can be large; the SDK's own servers accept messages this big.
_MAX_MESSAGE = 400 * 1024 * 1024


def sdk_version() -> str:
    return importlib.metadata.version("pulumi")


def program_options(info: language_pb2.ProgramInfo) -> dict[str, Any]:
    """`runtime.options` of Pulumi.yaml as the CLI sends them."""
    return json_format.MessageToDict(info.options) if info.HasField("options") else {}


def run_response(returncode: int) -> language_pb2.RunResponse:
    """The program's exit code as the engine wants it: bail when the program already reported its error."""
    if returncode == 0:
        return language_pb2.RunResponse()
    if returncode == BAIL:
        return language_pb2.RunResponse(bail=True)
    if returncode < 0:
        return language_pb2.RunResponse(error=f"the program was ended by signal {-returncode}")
    return language_pb2.RunResponse(error=f"the program exited with code {returncode}")


def plugin_command(kind: str, python: Path, args: Sequence[str], plugin_directory: str) -> list[str]:
    """The process RunPlugin starts: for a policy pack, what the official `pulumi-analyzer-policy-python` runs."""
    if kind != "analyzer":
        raise interpreter.LanguageHostError(f"plugins of kind {kind!r} are not supported in Python by this host")
    return [str(python), "-u", "-m", "pulumi.policy", *args, plugin_directory]


def plugin_env(base: Mapping[str, str], extra: Sequence[str]) -> dict[str, str]:
    """The plugin's environment: ours, with the engine's `KEY=VALUE` entries on top."""
    env = dict(base)
    env.update(entry.split("=", 1) for entry in extra if "=" in entry)
    return env


def stream_process(
    cmd: list[str],
    cwd: str | None,
    env: Mapping[str, str],
    on_start: Callable[[subprocess.Popen], Any] = lambda proc: None,
) -> Iterator[language_pb2.RunPluginResponse]:
    """The process's stdout and stderr as they come, then its exit code, as RunPluginResponses."""
    pipe = subprocess.PIPE
    proc = subprocess.Popen(cmd, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=pipe, stderr=pipe)
    on_start(proc)
    chunks: queue.Queue[tuple[str, bytes]] = queue.Queue()

    def pump(name: str, stream) -> None:
        try:
            for chunk in iter(lambda: stream.read1(65536), b""):
                chunks.put((name, chunk))
        finally:
            chunks.put((name, b""))  # the end of this stream, even when reading it failed

    for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr)):
        threading.Thread(target=pump, args=(name, stream), daemon=True).start()
    try:
        open_streams = 2
        while open_streams:
            name, chunk = chunks.get()
            if not chunk:
                open_streams -= 1
                continue
            yield language_pb2.RunPluginResponse(**{name: chunk})
        yield language_pb2.RunPluginResponse(exitcode=proc.wait())
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait()


def _project_options(project_dir: str) -> dict[str, Any]:
    """`runtime.options` of the Pulumi.yaml in `project_dir`, if there is one."""
    import yaml

    path = Path(project_dir) / "Pulumi.yaml"
    if not project_dir or not path.is_file():
        return {}
    runtime = (yaml.safe_load(path.read_text()) or {}).get("runtime")
    return dict(runtime.get("options") or {}) if isinstance(runtime, dict) else {}


class LanguageHost(language_pb2_grpc.LanguageRuntimeServicer):
    def __init__(self, engine_address: str) -> None:
        self.engine_address = engine_address
        # The program runners and plugins this host started and that still run.
        self._children: set[subprocess.Popen] = set()
        self._children_lock = threading.Lock()

    def _started(self, proc: subprocess.Popen) -> subprocess.Popen:
        with self._children_lock:
            self._children.add(proc)
        return proc

    def _ended(self, proc: subprocess.Popen) -> None:
        with self._children_lock:
            self._children.discard(proc)

    def end_children(self) -> None:
        """Ends every process this host started (when the engine is gone: a program has no one to talk to)."""
        with self._children_lock:
            children = list(self._children)
        for proc in children:
            proc.kill()
            proc.wait()

    def _interpreter(self, info: language_pb2.ProgramInfo, context: grpc.ServicerContext) -> Path:
        try:
            return interpreter.resolve(info.root_directory or info.program_directory, program_options(info))
        except interpreter.LanguageHostError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
            raise  # abort raises; this keeps type checkers and readers certain

    def _query(self, python: Path, code: str) -> Any:
        out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60, check=True)
        return json.loads(out.stdout)

    def Handshake(self, request, context):
        return language_pb2.LanguageHandshakeResponse()

    def GetPluginInfo(self, request, context):
        return plugin_pb2.PluginInfo(version=sdk_version())

    # The program's only resources are dynamic ones, whose provider plugin ships with the CLI: like the
    # official host for a project with no plugins to install, report none.
    def GetRequiredPlugins(self, request, context):
        return language_pb2.GetRequiredPluginsResponse()

    def GetRequiredPackages(self, request, context):
        return language_pb2.GetRequiredPackagesResponse()

    def InstallDependencies(self, request, context):
        # scripts/setup.sh owns the virtualenv; here it is only checked, so `pulumi install` says what is missing.
        python = self._interpreter(request.info, context)
        yield language_pb2.InstallDependenciesResponse(stdout=f"using {python} (set up by scripts/setup.sh)\n".encode())

    def About(self, request, context):
        python = self._interpreter(request.info, context)
        version = self._query(python, "import json, platform; print(json.dumps(platform.python_version()))")
        return language_pb2.AboutResponse(executable=str(python), version=version)

    def GetProgramDependencies(self, request, context):
        python = self._interpreter(request.info, context)
        dists = self._query(
            python,
            "import json, importlib.metadata as m; "
            "print(json.dumps(sorted({d.metadata['Name']: d.version for d in m.distributions()}.items())))",
        )
        return language_pb2.GetProgramDependenciesResponse(
            dependencies=[language_pb2.DependencyInfo(name=n, version=v) for n, v in dists]
        )

    def Run(self, request, context):
        python = self._interpreter(request.info, context)
        if self.engine_address and not request.args:
            request.args.append(self.engine_address)
        cwd = request.pwd or request.info.program_directory or None
        # The program's output goes to this host's stdout/stderr, which the CLI shows; the request goes on stdin.
        proc = self._started(subprocess.Popen([str(python), "-u", str(RUNNER)], stdin=subprocess.PIPE, cwd=cwd))
        try:
            assert proc.stdin is not None
            proc.stdin.write(request.SerializeToString())
            proc.stdin.close()
            return run_response(proc.wait())
        finally:
            self._ended(proc)

    def RunPlugin(self, request, context):
        info = request.info
        try:
            options = program_options(info)
            root = info.root_directory or info.program_directory
            if not interpreter.virtualenv_dir(root, options):
                # A pack inside the project (policy/) names no virtualenv of its own: it runs in the project's.
                root, options = request.pwd, _project_options(request.pwd)
            python = interpreter.resolve(root, options)
            cmd = plugin_command(request.kind, python, list(request.args), info.program_directory)
        except interpreter.LanguageHostError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
            raise
        env = plugin_env(os.environ, list(request.env))
        # The CLI cancels the stream when it is done with the plugin: the process goes with it.
        started: list[subprocess.Popen] = []

        def on_start(proc: subprocess.Popen) -> None:
            started.append(self._started(proc))
            context.add_callback(proc.terminate)

        try:
            yield from stream_process(cmd, request.pwd or None, env, on_start)
        finally:
            for proc in started:
                self._ended(proc)

    def Cancel(self, request, context):
        return empty_pb2.Empty()


def _parse_args(argv: list[str]) -> str:
    """The engine address, the last positional argument; logging and tracing flags are accepted and ignored."""
    parser = argparse.ArgumentParser(prog="pulumi-language-python", add_help=False)
    parser.add_argument("--tracing")
    parser.add_argument("--root")
    parser.add_argument("engine", nargs="?", default="")
    args, _unknown = parser.parse_known_args(argv)
    return args.engine


def _stop(signum, frame):
    raise SystemExit(0)


def main(argv: list[str]) -> int:
    engine_address = _parse_args(argv)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", _MAX_MESSAGE), ("grpc.max_send_message_length", _MAX_MESSAGE)],
    )
    host = LanguageHost(engine_address)
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(host, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    # The CLI ends the host with SIGINT once it is done with it: stop serving and exit quietly.
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    # If the CLI dies without ending this host, the program it runs has no engine left: end both.
    lifeline.watch_parent("pulumi-language-python", host.end_children)
    print(port, flush=True)
    try:
        server.wait_for_termination()
    finally:
        server.stop(grace=1)
        sys.stdout.flush()
    return 0
