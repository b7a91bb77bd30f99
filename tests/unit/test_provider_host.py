"""The dynamic-provider plugin: its pool size, the SDK module it serves, and the process the CLI starts."""

from __future__ import annotations

import base64
import importlib.util
import os
import pickle
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dill
import grpc
import pytest
from google.protobuf import struct_pb2
from pulumi.dynamic import CreateResult, ResourceProvider
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from toolchain.providerhost import server

PROJECT_DIR = Path(__file__).resolve().parents[2]
SETUP = PROJECT_DIR / "scripts" / "setup.sh"
# How long a create waits for the others it expects beside it: a bound, never a measure.
WAIT_FOR_OTHERS = 10.0
LINGER = 0.3

_in_flight = 0
_most = 0
_lock = threading.Lock()


class OverlapProvider(ResourceProvider):
    """A create that waits (bounded) until `props["expect"]` creates run at once, then lingers a moment; it returns
    the most creates it saw running at once. The pool's size is what is observed, not a duration."""

    def create(self, props):
        global _in_flight, _most
        with _lock:
            _in_flight += 1
            _most = max(_most, _in_flight)
        try:
            deadline = time.monotonic() + WAIT_FOR_OTHERS
            while time.monotonic() < deadline:
                with _lock:
                    if _in_flight >= props["expect"]:
                        break
                time.sleep(0.01)
            time.sleep(LINGER)
            with _lock:
                return CreateResult(id_="overlap", outs={"most": _most})
        finally:
            with _lock:
                _in_flight -= 1


def write_shims(root: Path) -> Path:
    """setup.sh's plugin shim writers alone, with ROOT the project and BIN a scratch folder."""
    script = f"""
set -euo pipefail
ROOT={PROJECT_DIR}; BIN={root}
eval "$(sed -n '/^python_plugin_shim()/,/^}}/p;/^plugin_shims()/,/^}}/p' {SETUP})"
plugin_shims
"""
    subprocess.run(["bash", "-c", script], env={"PATH": "/usr/bin:/bin"}, check=True)
    return root / "pulumi-resource-pulumi-python"


def test_default_pool_when_unset_or_empty():
    assert server.threads_from({}) == server.DEFAULT_THREADS == 32
    assert server.threads_from({server.THREADS_VARIABLE: ""}) == 32


def test_pool_size_taken_from_the_environment():
    assert server.threads_from({server.THREADS_VARIABLE: "100"}) == 100
    assert server.threads_from({server.THREADS_VARIABLE: " 1 "}) == 1


@pytest.mark.parametrize("raw", ["0", "-3", "abc", "4.5", "1025", "\u0663\u0662", "1e3", "32 threads"])
def test_bad_pool_size_is_refused_naming_variable_and_value(raw):
    with pytest.raises(server.ThreadsError) as err:
        server.threads_from({server.THREADS_VARIABLE: raw})
    assert server.THREADS_VARIABLE in str(err.value)
    assert repr(raw) in str(err.value)
    assert "1 to 1024" in str(err.value)


def sdk_source() -> str:
    spec = importlib.util.find_spec(server.SDK_MODULE)
    assert spec is not None and spec.loader is not None
    return spec.loader.get_source(server.SDK_MODULE)


def pool_sizes(tree) -> list[object]:
    import ast

    return [
        kw.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "ThreadPoolExecutor"
        for kw in node.keywords
        if kw.arg == "max_workers" and isinstance(kw.value, ast.Constant)
    ]


def test_the_pinned_sdk_caps_its_pool_at_four_and_ours_replaces_only_that():
    import ast

    source = sdk_source()
    assert pool_sizes(ast.parse(source)) == [4]
    tree = server.with_pool_size(source, 57)
    assert pool_sizes(tree) == [57]
    # Everything else is the SDK's text: the servicer, the port line, the SIGINT handling.
    original = ast.dump(ast.parse(source)).replace("Constant(value=4)", "Constant(value=57)", 1)
    assert ast.dump(tree) == original


@pytest.mark.parametrize(
    "source",
    [
        "def main():\n    server = grpc.server(None)\n\nmain()\n",
        "from concurrent import futures\ndef main():\n    futures.ThreadPoolExecutor(max_workers=4)\n",
        "from concurrent import futures\ndef serve():\n    futures.ThreadPoolExecutor(max_workers=4)\n\nserve()\n",
    ],
)
def test_an_sdk_of_another_shape_is_refused(source):
    with pytest.raises(server.SdkShapeError, match="needs updating"):
        server.with_pool_size(source, 8)


def fake_python(path: Path) -> Path:
    """An interpreter that only says who it is and what it was asked to run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\necho "{path}" "$@"\n')
    path.chmod(0o755)
    return path


def run_shim(shim: Path, cwd: Path, **env: str) -> str:
    done = subprocess.run([str(shim), "A", "B"], cwd=cwd, env={"PATH": "/usr/bin:/bin", **env}, capture_output=True)
    return done.stdout.decode().strip()


def test_setup_writes_one_shim_per_plugin_that_runs_the_programs_virtualenv(tmp_path):
    """As the official plugin scripts do: the virtualenv the CLI names from the program's Pulumi.yaml comes
    first (a user's own program has secure-postfix installed there, not in this checkout's .venv)."""
    shim = write_shims(tmp_path / "bin")
    policy = tmp_path / "bin" / "pulumi-analyzer-policy-python"
    program = tmp_path / "program"
    venv_python = fake_python(program / "venv" / "bin" / "python")
    other = fake_python(tmp_path / "other" / "python")
    own = PROJECT_DIR / ".venv" / "bin" / "python"
    provider = f'-u {PROJECT_DIR}/toolchain/providerhost/__main__.py A B'
    assert run_shim(shim, program, PULUMI_RUNTIME_VIRTUALENV="venv") == f"{venv_python} {provider}"
    assert run_shim(shim, tmp_path, PULUMI_RUNTIME_VIRTUALENV=str(program / "venv")) == f"{venv_python} {provider}"
    assert run_shim(shim, program, PULUMI_PYTHON_CMD=str(other)) == f"{other} {provider}"
    # A virtualenv that is not there falls back, as before, instead of failing the plugin.
    assert run_shim(policy, program, PULUMI_RUNTIME_VIRTUALENV="gone", PULUMI_PYTHON_CMD=str(other)) == (
        f"{other} -u -m pulumi.policy A B"
    )
    assert f'python=${{PULUMI_PYTHON_CMD:-{own}}}' in shim.read_text()
    assert shim.stat().st_mode & 0o111 and policy.stat().st_mode & 0o111


def start_plugin(shim: Path, threads: str | None) -> tuple[subprocess.Popen[bytes], int]:
    env = {k: v for k, v in os.environ.items() if k != server.THREADS_VARIABLE}
    if threads is not None:
        env[server.THREADS_VARIABLE] = threads
    # As the engine starts it: in the program's folder, where the providers' modules are.
    proc = subprocess.Popen(
        [str(shim), "127.0.0.1:1"], cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.rstrip(b"\n").isdigit(), (line, proc.stderr.read() if proc.poll() is not None else b"")
    return proc, int(line)


def create_request(expect: int) -> provider_pb2.CreateRequest:
    provider = base64.b64encode(dill.dumps(OverlapProvider(), protocol=pickle.DEFAULT_PROTOCOL, recurse=True))
    props = struct_pb2.Struct()
    props.update({"__provider": provider.decode(), "expect": expect})
    return provider_pb2.CreateRequest(urn="urn:pulumi:s::p::pulumi-python:dynamic:Resource::x", properties=props)


def most_at_once(port: int, count: int, expect: int) -> int:
    """The most of `count` creates, sent at once, that the plugin ran at the same time."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = provider_pb2_grpc.ResourceProviderStub(channel)
        stub.Create(create_request(1), timeout=30)  # the first loads the provider
        with ThreadPoolExecutor(max_workers=count) as pool:
            replies = list(pool.map(lambda _: stub.Create(create_request(expect), timeout=60), range(count)))
    assert all(reply.id == "overlap" for reply in replies)
    return max(int(reply.properties["most"]) for reply in replies)


def stop(proc: subprocess.Popen[bytes]) -> bytes:
    """SIGINT, as the engine stops a plugin; SIGKILL if it has not ended within 10 s, so none is ever left."""
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        err += b"\n(did not stop on SIGINT within 10 s)"
    return err


@pytest.mark.parametrize(("threads", "at_once"), [(None, 12), ("12", 12), ("4", 4)])
def test_the_plugin_runs_as_many_operations_at_once_as_its_pool(tmp_path, threads, at_once):
    proc, port = start_plugin(write_shims(tmp_path), threads)
    try:
        # Twelve creates sent at once: all twelve run together with 12 or more workers, four with the SDK's pool.
        most = most_at_once(port, 12, at_once)
    finally:
        err = stop(proc)
    assert most == at_once
    assert proc.returncode == 0 and b"Traceback" not in err, err


def test_a_bad_pool_size_stops_the_plugin_with_the_reason(tmp_path):
    env = {**os.environ, server.THREADS_VARIABLE: "lots"}
    done = subprocess.run(
        [str(write_shims(tmp_path))], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2 and done.stdout == ""
    assert f"{server.THREADS_VARIABLE} must be a whole number from 1 to 1024" in done.stderr
    assert "'lots'" in done.stderr
