"""The Harbor stand-in, started once per session; every test starts from an empty registry
with no faults injected."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harbor_standin import PASSWORD, ROBOT, HarborStandin  # noqa: E402


@pytest.fixture(scope="session")
def harbor_server() -> Iterator[HarborStandin]:
    server = HarborStandin(users={ROBOT: PASSWORD})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def harbor(harbor_server: HarborStandin) -> Iterator[HarborStandin]:
    harbor_server.reset()
    harbor_server.wait_idle()
    harbor_server.clear()
    harbor_server.reset()
    yield harbor_server
    harbor_server.reset()
