"""Session fixture ``gw``: the real platform (kubesim + Ceph RGW + JupyterHub + proxy) with the
jobs gateway registered as a managed service (see gateway_testlib)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from gateway_testlib import (
    API,
    NAMESPACE,
    USERS,
    GatewayEnv,
    Kubesim,
    pvc,
    wait_gateway,
)
from gpulab.hub.names import escape_username


@pytest.fixture(scope="session")
def gw(platform) -> Iterator[GatewayEnv]:
    """The session platform (tests/conftest.py) that registers the gateway itself
    (gpulab.platform), plus the PVCs an installed gpulab has."""
    if platform.s3 is None:
        pytest.skip("no Ceph S3 gateway on this machine (ceph-mon, ceph-osd, radosgw)")
    config_text = (platform.state_dir / "jupyterhub_config.py").read_text()
    match = re.search(r"gateway_service\((.*?)\)", config_text, re.S)
    assert match, "the platform does not register the jobs gateway"
    port = int(re.search(r"port=(\d+)", match.group(1)).group(1))
    sim = Kubesim(platform.kubesim_url)
    sim.create(
        f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims", pvc("dataset-imagenet-mini")
    )
    for user in USERS:
        sim.create(
            f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims",
            pvc(f"home-{escape_username(user)}"),
        )
    tokens = {u: platform.user_token(u) for u in USERS}
    wait_gateway(platform.hub_url + API, tokens["alice"])
    yield GatewayEnv(platform, sim, tokens, port)
    sim.faults()
