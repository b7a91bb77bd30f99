"""Inline programs run once per command in one process: a reused loopback port must not fail the next run."""

from __future__ import annotations

import time
from concurrent import futures

import grpc
import pytest
from pulumi.runtime import _grpc_settings, settings
from pulumi.runtime.proto import resource_pb2

from toolchain.stackctl.engine import LOCAL_SUBCHANNELS, isolate_grpc_channels

METHOD = "/pulumirpc.ResourceMonitor/SupportsFeature"


def _monitor(port: int = 0) -> tuple[grpc.Server, int]:
    """A stand-in resource monitor on loopback that answers SupportsFeature."""

    def supports(request: bytes, context) -> bytes:
        return resource_pb2.SupportsFeatureResponse(hasSupport=True).SerializeToString()

    handler = grpc.method_handlers_generic_handler(
        "pulumirpc.ResourceMonitor", {"SupportsFeature": grpc.unary_unary_rpc_method_handler(supports)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server, bound


def _first_call_after_port_reuse() -> grpc.StatusCode | None:
    """An ended engine's port handed to the next engine, as the SDK's own Settings connects to it."""
    request = resource_pb2.SupportsFeatureRequest(id="secrets")
    old_server, port = _monitor()
    old = settings.Settings(project="p", stack="s", monitor=f"127.0.0.1:{port}")
    old.monitor.SupportsFeature(request)
    old_server.stop(0)
    time.sleep(0.1)
    # A leftover call of the ended run (a program failing mid-way has some) meets the closed port.
    with pytest.raises(grpc.RpcError):
        old.monitor.SupportsFeature(request, timeout=2)
    new_server, _ = _monitor(port)
    try:
        new = settings.Settings(project="p", stack="s", monitor=f"127.0.0.1:{port}")
        new.monitor.SupportsFeature(request, timeout=5)
        return None
    except grpc.RpcError as exc:
        return exc.code()
    finally:
        new_server.stop(0)


@pytest.fixture
def sdk_options(monkeypatch):
    options = list(_grpc_settings._GRPC_CHANNEL_OPTIONS)
    monkeypatch.setattr(_grpc_settings, "_GRPC_CHANNEL_OPTIONS", options)
    monkeypatch.setattr(settings, "_GRPC_CHANNEL_OPTIONS", options)
    options[:] = [o for o in options if o != LOCAL_SUBCHANNELS]
    return options


def test_shared_pool_fails_the_first_call_of_the_next_run(sdk_options):
    """The control: without isolation the new engine's first call fails although it is listening."""
    assert _first_call_after_port_reuse() == grpc.StatusCode.UNAVAILABLE


def test_isolated_channels_reach_the_next_engine(sdk_options):
    isolate_grpc_channels(sdk_options)
    isolate_grpc_channels(sdk_options)
    assert sdk_options.count(LOCAL_SUBCHANNELS) == 1
    assert _first_call_after_port_reuse() is None
