"""Session fixture ``gw``: the real platform (kubesim + Ceph RGW + JupyterHub + proxy) with the
jobs gateway registered as a managed service (see gateway_testlib)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from gateway_testlib import (
    API,
    NAMESPACE,
    POLICY,
    USERS,
    GatewayEnv,
    Kubesim,
    gateway_hub_config,
    pvc,
    wait_gateway,
)


@pytest.fixture(scope="session")
def gw(tmp_path_factory) -> Iterator[GatewayEnv]:
    from gpulab.platform import LocalPlatform, PlatformConfig, ceph_available, free_port

    if not ceph_available():
        pytest.skip("Ceph (ceph-mon, ceph-osd, radosgw) is not installed")
    port = free_port()
    state_dir = tmp_path_factory.mktemp("gateway-platform")
    config = PlatformConfig(
        state_dir=state_dir,
        policy_path=POLICY,
        port=free_port(),
        nodes=os.environ.get("GPULAB_TEST_NODES", "2x4"),
        extra_hub_config=gateway_hub_config(POLICY, port),
    )
    platform = LocalPlatform(config)
    platform.start()
    try:
        sim = Kubesim(platform.kubesim_url)
        sim.create(
            f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims", pvc("dataset-imagenet-mini")
        )
        from gpulab.hub.names import escape_username

        for user in USERS:
            sim.create(
                f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims",
                pvc(f"home-{escape_username(user)}"),
            )
        tokens = {u: platform.user_token(u) for u in USERS}
        wait_gateway(platform.hub_url + API, tokens["alice"])
        yield GatewayEnv(platform, sim, tokens, port)
    finally:
        platform.stop()
