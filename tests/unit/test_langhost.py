"""The language host's pure parts, and the host process itself as the CLI starts and ends it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import language_pb2, language_pb2_grpc

from toolchain.langhost import interpreter, runner, server

PROJECT_DIR = Path(__file__).resolve().parents[2]


def _venv(root: Path, name: str = ".venv") -> Path:
    python = root / name / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    return python


def test_virtualenv_is_relative_to_the_project_root(tmp_path):
    python = _venv(tmp_path)
    assert interpreter.resolve(str(tmp_path), {"virtualenv": ".venv"}, env={}) == python


def test_absolute_virtualenv_is_taken_as_is(tmp_path):
    python = _venv(tmp_path, "elsewhere")
    assert interpreter.resolve("/nonexistent", {"virtualenv": str(tmp_path / "elsewhere")}, env={}) == python


def test_missing_virtualenv_names_the_path_and_the_fix(tmp_path):
    with pytest.raises(interpreter.LanguageHostError) as err:
        interpreter.resolve(str(tmp_path), {"virtualenv": "venv"}, env={})
    assert str(tmp_path / "venv" / "bin" / "python") in str(err.value)
    assert "scripts/setup.sh" in str(err.value)


def test_other_toolchains_are_refused_by_name(tmp_path):
    with pytest.raises(interpreter.LanguageHostError, match="'poetry'"):
        interpreter.resolve(str(tmp_path), {"toolchain": "poetry"}, env={})


def test_without_virtualenv_pulumi_python_cmd_comes_first(tmp_path):
    python = _venv(tmp_path, "py")
    env = {"PULUMI_PYTHON_CMD": str(python), "PATH": "/nonexistent"}
    assert interpreter.resolve(str(tmp_path), {}, env=env) == python


def test_without_any_interpreter_the_error_says_what_to_set(tmp_path):
    with pytest.raises(interpreter.LanguageHostError, match="PULUMI_PYTHON_CMD"):
        interpreter.resolve(str(tmp_path), {}, env={"PATH": str(tmp_path)})


def test_entry_point_dot_runs_the_folder_itself():
    assert runner.program_path("/p", ".") == Path("/p")
    assert runner.program_path("/p", "") == Path("/p")
    assert runner.program_path("/p", "app.py") == Path("/p/app.py")


def _request(**kw) -> language_pb2.RunRequest:
    info = language_pb2.ProgramInfo(root_directory="/root/dir", program_directory="/root/dir", entry_point=".")
    base = {
        "project": "secure-postfix",
        "stack": "prod",
        "monitor_address": "127.0.0.1:1",
        "dryRun": True,
        "parallel": 3,
        "organization": "acme",
        "args": ["127.0.0.1:2"],
        "info": info,
    }
    return language_pb2.RunRequest(**{**base, **kw})


def test_runtime_options_carry_every_engine_setting():
    assert runner.runtime_options(_request()) == {
        "project": "secure-postfix",
        "stack": "prod",
        "root_directory": "/root/dir",
        "parallel": 12,
        "engine_address": "127.0.0.1:2",
        "monitor_address": "127.0.0.1:1",
        "preview": True,
        "organization": "acme",
    }


def test_runtime_options_leave_the_sdk_defaults_when_the_engine_sends_none():
    options = runner.runtime_options(_request(organization="", parallel=0, dryRun=False))
    assert (options["organization"], options["parallel"], options["preview"]) == (None, 4, False)


def test_program_options_arrive_as_a_plain_dict():
    options = struct_pb2.Struct()
    options.update({"virtualenv": ".venv"})
    assert server.program_options(language_pb2.ProgramInfo(options=options)) == {"virtualenv": ".venv"}
    assert server.program_options(language_pb2.ProgramInfo()) == {}


def test_exit_codes_become_run_responses():
    assert server.run_response(0) == language_pb2.RunResponse()
    assert server.run_response(runner.BAIL) == language_pb2.RunResponse(bail=True)
    assert "code 1" in server.run_response(1).error
    assert "signal 9" in server.run_response(-9).error


def test_engine_address_is_the_last_argument_whatever_flags_come_first():
    assert server._parse_args(["--logtostderr", "-v=9", "--tracing", "http://t", "127.0.0.1:5000"]) == "127.0.0.1:5000"


@pytest.fixture
def host_process():
    """The host started the way the CLI starts it: its own process group, the port on its first stdout line."""
    proc = subprocess.Popen(
        [sys.executable, "-u", str(PROJECT_DIR / "toolchain" / "langhost" / "__main__.py"), "127.0.0.1:1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        cwd=PROJECT_DIR,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_host_answers_the_cli_and_ends_quietly_on_sigint(host_process):
    port = int(host_process.stdout.readline())
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = language_pb2_grpc.LanguageRuntimeStub(channel)
        assert stub.GetPluginInfo(empty_pb2.Empty(), timeout=10).version == server.sdk_version()
        info = language_pb2.ProgramInfo(root_directory=str(PROJECT_DIR), program_directory=str(PROJECT_DIR))
        packages = stub.GetRequiredPackages(language_pb2.GetRequiredPackagesRequest(info=info), timeout=10)
        assert list(packages.packages) == []
        # A missing virtualenv is refused with the path, not with a crash of the host.
        missing = struct_pb2.Struct()
        missing.update({"virtualenv": "no-such-venv"})
        bad = language_pb2.ProgramInfo(root_directory=str(PROJECT_DIR), options=missing)
        with pytest.raises(grpc.RpcError) as err:
            stub.About(language_pb2.AboutRequest(info=bad), timeout=10)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "no-such-venv" in err.value.details()
    # The engine ends its plugins by signalling the process group with SIGINT.
    os.killpg(host_process.pid, signal.SIGINT)
    assert host_process.wait(timeout=10) == 0
    stderr = host_process.stderr.read().decode()
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr


def test_policy_packs_run_as_the_official_analyzer_script_runs_them():
    cmd = server.plugin_command("analyzer", Path("/venv/bin/python"), ["127.0.0.1:5"], "/p/policy")
    assert cmd == ["/venv/bin/python", "-u", "-m", "pulumi.policy", "127.0.0.1:5", "/p/policy"]
    with pytest.raises(interpreter.LanguageHostError, match="'resource'"):
        server.plugin_command("resource", Path("/venv/bin/python"), [], "/p")


def test_plugin_env_puts_the_engines_entries_on_top():
    assert server.plugin_env({"A": "1", "B": "2"}, ["B=3", "C=x=y", "junk"]) == {"A": "1", "B": "3", "C": "x=y"}


def test_a_plugins_output_streams_back_then_its_exit_code():
    code = "import sys; print('out'); sys.stdout.flush(); print('err', file=sys.stderr); sys.exit(3)"
    responses = list(server.stream_process([sys.executable, "-c", code], None, os.environ))
    assert b"".join(r.stdout for r in responses) == b"out\n"
    assert b"".join(r.stderr for r in responses) == b"err\n"
    assert responses[-1].WhichOneof("output") == "exitcode" and responses[-1].exitcode == 3


def test_a_pack_without_a_virtualenv_runs_in_the_projects(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: p\nruntime:\n  name: python\n  options:\n    virtualenv: .venv\n")
    assert server._project_options(str(tmp_path)) == {"virtualenv": ".venv"}
    assert server._project_options(str(tmp_path / "none")) == {}
