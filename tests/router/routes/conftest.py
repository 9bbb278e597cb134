"""Route tests build handles from JSON, as configs do. Recorder children are reachable from
that JSON as ``"Rec|<name>"``: the ``kids`` fixture registers a test-only "Rec" type whose
builder returns ``kids[name]`` (created on first use), and removes it afterwards."""

from __future__ import annotations

import pytest

from pymc.router.factory import RouteFactory
from pymc.router.routes.base import REGISTRY

from ..recording import Recorder


class Kids(dict):
    def __missing__(self, name: str) -> Recorder:
        self[name] = Recorder(name)
        return self[name]

    def add(self, name: str, reply=None, deferred: bool = False) -> Recorder:
        self[name] = Recorder(name, reply, deferred)
        return self[name]

    def asked(self, n: int = 3, prefix: str = "k") -> list[int]:
        """How many requests each of the children ``<prefix>0`` … ``<prefix>{n-1}`` got."""
        return [len(self[f"{prefix}{i}"].seen) for i in range(n)]


@pytest.fixture
def kids(monkeypatch) -> Kids:
    recorders = Kids()
    monkeypatch.setitem(REGISTRY, "Rec", lambda factory, json: recorders[json])
    return recorders


@pytest.fixture
def build(kids):
    """``build(json)``: the handle a fresh RouteFactory makes of ``json``."""
    return lambda json: RouteFactory().create(json)
