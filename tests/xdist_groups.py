"""Which tests must run on the same pytest-xdist worker (``./dev.sh test`` runs ``-n 2 --dist
loadgroup``).

A fixture wider than a test (session, package, module, class) is set up once per worker that
needs it. For the ones that start servers (a platform: kubesim + Ceph + JupyterHub + proxy,
~1 min; a bare hub; a Ceph cluster; a module's own kubesim), running their tests on two workers
would start them twice and cost more than it saves. So every test that uses such a fixture goes
into one group with every other test sharing any such fixture with it (the connected component
over shared fixtures), and each server still starts once. Tests that use none spread freely.

Only the suite's own fixtures count (pytest's and plugins' own, such as the asyncio
session loop, are per worker by nature), minus :data:`PER_WORKER`: data-only fixtures cheap to
build on each worker.

How the groups reach xdist: xdist's own ``xdist_group`` mark works by appending ``@group`` to
each test id on the worker, which pytest >= 9.2 no longer lets a plugin do (the id is
read-only), so the mark is silently ignored. Instead each worker writes the groups it computed
at collection to a file the controller named (``workerinput``), and the controller's scheduler
(tests/xdist_scheduling.py) reads it when it splits the collection into units of work: all
workers collect the same tests before scheduling starts.
"""

from __future__ import annotations

import inspect
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Session fixtures that build only data (no server, no shared folder): each worker builds its own.
PER_WORKER = frozenset({"artifacts_dir", "policy", "vision", "default_ent", "multi"})

WIDER_THAN_TEST = ("session", "package", "module", "class")  # widest first

GROUPS_FILE = "gpulab_xdist_groups_file"  # the workerinput key


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
        return f"{self.name}:{self.lives_in or self.defined_in}"


def _defined_in_suite(func: Any, rootpath: Path) -> bool:
    """A fixture of the test suite's own files (a conftest, a test module), not of pytest or an
    installed plugin."""
    try:
        source = Path(inspect.getfile(inspect.unwrap(func))).resolve()
    except (TypeError, OSError):
        return False
    return source.is_relative_to(rootpath) and "site-packages" not in source.parts


def shared_fixtures(item: pytest.Item) -> list[SharedFixture]:
    """The server-starting fixtures wider than a test that ``item`` uses (directly or not)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    rootpath = item.config.rootpath
    found = []
    for name in item.fixturenames:
        defs = info.name2fixturedefs.get(name)
        if not defs or name in PER_WORKER:
            continue
        fixture = defs[-1]  # the one this test gets (the closest override)
        scope = fixture.scope
        if scope not in WIDER_THAN_TEST or not _defined_in_suite(fixture.func, rootpath):
            continue  # per test, or pytest's / a plugin's own
        module = getattr(item, "module", None)
        lives_in = ""
        if scope == "module":
            lives_in = module.__name__ if module else fixture.baseid
        elif scope == "class":
            cls = getattr(item, "cls", None)
            lives_in = (
                f"{module.__name__ if module else fixture.baseid}.{cls.__qualname__ if cls else ''}"
            )
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


def groups_of(uses: Iterable[tuple[str, Sequence[SharedFixture]]]) -> dict[str, str]:
    """Test id -> group name, for the tests that use a shared fixture (``uses``: each test id
    with the shared fixtures it uses); tests sharing a fixture, directly or through others,
    get the same group."""
    uses = [(test, fixtures) for test, fixtures in uses if fixtures]
    components = _Components()
    for _, fixtures in uses:
        components.join(fixtures)
    return {test: components.find(fixtures[0]).group_name() for test, fixtures in uses}


def record_groups(config: pytest.Config, items: Sequence[pytest.Item]) -> None:
    """On an xdist worker: write the collected tests' groups where the controller reads them."""
    path = getattr(config, "workerinput", {}).get(GROUPS_FILE)
    if not path:
        return
    groups = groups_of((item.nodeid, shared_fixtures(item)) for item in items)
    # Every worker writes the same groups: write aside and rename, so a reader sees one whole.
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(groups, f)
    os.replace(tmp, path)
