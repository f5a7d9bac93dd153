"""A real JupyterHub + proxy with the culler service (1 s cycles, tests/culler_service/policy.yaml)
and NullSpawner servers (see barehub.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from barehub import BareHub  # noqa: E402

POLICY = Path(__file__).resolve().parent / "policy.yaml"


@pytest.fixture(scope="session")
def culler_hub(tmp_path_factory):
    hub = BareHub(tmp_path_factory.mktemp("cullerhub"), POLICY, interval=1.0).start()
    try:
        hub.add_user("admin", ["fast"], admin=True)
        for name, groups in [
            ("alice", ["fast"]),
            ("bob", ["fast"]),
            ("carol", []),
            ("dave", ["slow"]),
            ("erin", ["fast"]),
            ("frank", ["fast"]),
        ]:
            hub.add_user(name, groups)
        yield hub
    finally:
        hub.stop()
