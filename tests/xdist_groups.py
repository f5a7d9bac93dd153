"""Which tests must run on the same pytest-xdist worker (``./dev.sh test`` runs ``-n 2 --dist
loadgroup``).

A fixture wider than a test (session, package, module, class) is set up once per worker that
needs it. For the ones that start servers (a platform: kubesim + Ceph + JupyterHub + proxy,
~1 min; a bare hub; a Ceph cluster; a module's own kubesim), running their tests on two workers
would start them twice and cost more than it saves. So every test that uses such a fixture goes
into one xdist group with every other test sharing any such fixture with it (the connected
component over shared fixtures), and each server still starts once. Tests that use none spread
freely over the workers.

Only fixtures defined under ``tests/`` count (pytest's and plugins' own, such as the asyncio
session loop, are per worker by nature), minus :data:`PER_WORKER`: data-only fixtures cheap to
build on each worker.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pytest

# Session fixtures that build only data (no server, no shared folder): each worker builds its own.
PER_WORKER = frozenset({"artifacts_dir", "policy", "vision", "default_ent", "multi"})

WIDER_THAN_TEST = ("session", "package", "module", "class")  # widest first


@dataclass(frozen=True, order=True)
class SharedFixture:
    """One instance of a fixture wider than a test: its name, where it is defined, and the
    node it lives in (the module for a module-scoped fixture, the class for a class-scoped one).
    Ordered widest first, so that a group is named for its widest fixture (``platform``)."""

    width: int  # index in WIDER_THAN_TEST
    name: str
    defined_in: str
    lives_in: str

    def group_name(self) -> str:
        # xdist reads the group from the test id after its last "@": keep both out of it.
        return f"{self.name}:{self.lives_in or self.defined_in}".replace("@", "_").replace("]", "_")


def shared_fixtures(item: pytest.Item) -> list[SharedFixture]:
    """The server-starting fixtures wider than a test that ``item`` uses (directly or not)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    found = []
    for name in item.fixturenames:
        defs = info.name2fixturedefs.get(name)
        if not defs or name in PER_WORKER:
            continue
        fixture = defs[-1]  # the one this test gets (the closest override)
        scope = fixture.scope
        if scope not in WIDER_THAN_TEST or not fixture.baseid:
            continue  # per test, or pytest's / a plugin's own
        lives_in = ""
        if scope == "module":
            lives_in = item.module.__name__ if item.module else fixture.baseid
        elif scope == "class":
            lives_in = item.cls.__qualname__ if item.cls else fixture.baseid
            lives_in = f"{item.module.__name__}.{lives_in}" if item.module else lives_in
        found.append(SharedFixture(WIDER_THAN_TEST.index(scope), name, fixture.baseid, lives_in))
    return found


class _Components:
    """Union-find over shared fixtures."""

    def __init__(self) -> None:
        self.parent: dict[SharedFixture, SharedFixture] = {}

    def find(self, x: SharedFixture) -> SharedFixture:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def join(self, fixtures: Sequence[SharedFixture]) -> None:
        for other in fixtures[1:]:
            a, b = self.find(fixtures[0]), self.find(other)
            if a != b:
                # the smaller one represents, so that group names do not depend on test order
                self.parent[max(a, b)] = min(a, b)


def assign_groups(items: Iterable[pytest.Item]) -> dict[str, list[pytest.Item]]:
    """Mark each test that uses a shared fixture with the xdist group of its component;
    returns the groups (name -> tests)."""
    used = [(item, shared_fixtures(item)) for item in items]
    components = _Components()
    for _, fixtures in used:
        if fixtures:
            components.join(fixtures)
    groups: dict[str, list[pytest.Item]] = {}
    for item, fixtures in used:
        if not fixtures:
            continue
        name = components.find(fixtures[0]).group_name()
        item.add_marker(pytest.mark.xdist_group(name))
        groups.setdefault(name, []).append(item)
    return groups
