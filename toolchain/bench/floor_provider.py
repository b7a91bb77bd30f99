"""The engine floor's resource: a dynamic resource whose provider does nothing (no SSH, no host).

Its module imports nothing but the Pulumi SDK, so that the provider plugin pays only for the SDK when it loads
the provider: what is left of an operation's time is the engine's own (program, plugin, diff, checkpoints).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi.dynamic as dyn

PROVIDER_KEY = "__provider"


def _changed(olds: dict[str, Any], news: dict[str, Any]) -> list[str]:
    names = (set(olds) | set(news)) - {PROVIDER_KEY}
    return sorted(k for k in names if olds.get(k) != news.get(k))


class NoopProvider(dyn.ResourceProvider):
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dyn.CheckResult:
        return dyn.CheckResult(news, [])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.DiffResult:
        return dyn.DiffResult(changes=bool(_changed(olds, news)))

    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        return dyn.CreateResult(id_=str(props["host"]), outs=dict(props))

    def read(self, id_: str, props: dict[str, Any]) -> dyn.ReadResult:
        return dyn.ReadResult(id_, dict(props))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.UpdateResult:
        return dyn.UpdateResult(outs=dict(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        return None


class FloorHost(dyn.Resource, module="bench", name="FloorHost"):
    """One host's worth of inputs (its name and the eight limits), handled by a provider that does nothing."""

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        super().__init__(NoopProvider(), name, props, opts)
