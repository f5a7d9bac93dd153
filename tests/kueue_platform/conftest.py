"""The Kueue-on platform: kubesim running its Kueue (as Kueue runs on a production cluster),
JupyterHub, the jobs gateway and the culler, with tests/kueue_platform/policy.yaml.

Session-scoped and shared by every test of Kueue end to end (servers, jobs, the race between
them, the dashboard's queues): tests/xdist_groups.py puts them on one xdist worker, so it
starts once (~1 min). Tests make their own users, so they do not depend on one another.
"""

from __future__ import annotations

import pytest
from gpulab.hub.policy import load_policy
from kueue_testlib import POLICY, Cluster


@pytest.fixture(scope="session")
def kueue_platform(tmp_path_factory):
    from gpulab.platform import LocalPlatform, PlatformConfig, free_port

    config = PlatformConfig(
        state_dir=tmp_path_factory.mktemp("kueue-platform"),
        policy_path=POLICY,
        port=free_port(),
        nodes="2x4",
        kueue=True,
        cull_interval=5.0,
    )
    platform = LocalPlatform(config)
    platform.start()
    cluster = Cluster(platform)
    try:
        cluster.apply_policy(load_policy(POLICY))
    finally:
        cluster.close()
    yield platform
    platform.stop()
