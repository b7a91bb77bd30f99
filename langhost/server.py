"""The LanguageRuntime gRPC service the CLI calls, served with the stubs of the Python SDK.

Methods the CLI calls for preview/up/refresh/destroy/config/stack: GetPluginInfo, GetRequiredPackages
(GetRequiredPlugins on older CLIs), Run, About (update metadata) and, for `pulumi about`/`install`,
GetProgramDependencies and InstallDependencies. Handshake (only when the CLI attaches to a running host) and
Cancel are answered too. Code generation (GenerateProject/Package/Program, Pack, Link, Template,
RuntimeOptionsPrompts) stays UNIMPLEMENTED, which the CLI treats as "not supported by this language".
RunPlugin (policy packs) is the next method to add: it starts a process in an interpreter resolved
exactly like Run's (`_interpreter`) and streams its output back.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import signal
import subprocess
import sys
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format
from pulumi.runtime.proto import language_pb2, language_pb2_grpc, plugin_pb2

from langhost import interpreter
from langhost.runner import BAIL

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


class LanguageHost(language_pb2_grpc.LanguageRuntimeServicer):
    def __init__(self, engine_address: str) -> None:
        self.engine_address = engine_address

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
        proc = subprocess.Popen([str(python), "-u", str(RUNNER)], stdin=subprocess.PIPE, cwd=cwd)
        assert proc.stdin is not None
        proc.stdin.write(request.SerializeToString())
        proc.stdin.close()
        return run_response(proc.wait())

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
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(LanguageHost(engine_address), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    # The CLI ends the host with SIGINT once it is done with it: stop serving and exit quietly.
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    print(port, flush=True)
    try:
        server.wait_for_termination()
    finally:
        server.stop(grace=1)
        sys.stdout.flush()
    return 0
