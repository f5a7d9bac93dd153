"""Session fixture ``gw``: the real platform (kubesim + Ceph RGW + JupyterHub + proxy) with the
jobs gateway registered as a managed service (see gateway_testlib)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from gateway_testlib import (
    API,
    USERS,
    GatewayEnv,
    Kubesim,
    wait_gateway,
)


@pytest.fixture(scope="session")
def gw(platform) -> Iterator[GatewayEnv]:
    """The session platform (tests/conftest.py), which registers the gateway itself
    (gpulab.platform)."""
    if platform.s3 is None:
        pytest.skip("no Ceph S3 gateway on this machine (ceph-mon, ceph-osd, radosgw)")
    config_text = (platform.state_dir / "jupyterhub_config.py").read_text()
    match = re.search(r"service_definition\(\s*GATEWAY,(.*?)\)", config_text, re.S)
    assert match, "the platform does not register the jobs gateway"
    port = int(re.search(r"port=(\d+)", match.group(1)).group(1))
    # The dataset claim comes from the launcher (as an admin provisions it); each user's home
    # claim is made by the gateway at their first submit (or by the spawner).
    sim = Kubesim.of(platform)
    tokens = {u: platform.user_token(u) for u in USERS}
    wait_gateway(platform.hub_url + API, tokens["alice"])
    yield GatewayEnv(platform, sim, tokens, port)
    sim.faults()
