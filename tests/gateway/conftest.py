"""Session fixture ``gw``: the real platform (kubesim + Ceph RGW + JupyterHub + proxy) with the
jobs gateway registered as a managed service (see gateway_testlib)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gateway_testlib import GatewayEnv, gateway_env


@pytest.fixture(scope="session")
def gw(platform) -> Iterator[GatewayEnv]:
    """The session platform (tests/conftest.py), which registers the gateway itself
    (gpulab.platform)."""
    env = gateway_env(platform)
    yield env
    env.kubesim.faults()
