"""Session-wide fixtures that start real servers once.

`platform` is the whole product on kubesim (the same launcher as `gpulab up`): kubesim, a real
Ceph RGW when Ceph is installed, JupyterHub with gpulab and the real configurable-http-proxy.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.xdist_groups import record_groups

ROOT = Path(__file__).resolve().parent.parent

# Parallel workers (pytest-xdist) each take ports from their own range for the servers they
# start, so that one worker never picks a port the other has just checked and is about to
# bind (gpulab.platform.free_port). Below the kernel's ephemeral range (32768 and up), which
# anything binding port 0 gets.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _WORKER.startswith("gw") and _WORKER[2:].isdigit():
    _low = 16000 + 4000 * (int(_WORKER[2:]) % 4)
    os.environ["GPULAB_PORT_RANGE"] = f"{_low}-{_low + 3999}"
ARTIFACTS = ROOT / "test-artifacts"
E2E_POLICY = ROOT / "tests" / "e2e" / "policy.yaml"


def pytest_configure(config: pytest.Config) -> None:
    """Under ``-n N --dist loadgroup``, tests sharing a server-starting fixture run on one xdist
    worker (tests/xdist_groups.py)."""
    on_controller = not hasattr(config, "workerinput")
    if on_controller and config.pluginmanager.hasplugin("xdist"):
        from tests.xdist_scheduling import XdistGroupsPlugin

        config.pluginmanager.register(XdistGroupsPlugin(), "gpulab-xdist-groups")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    record_groups(config, items)  # on an xdist worker, for the controller's scheduler


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Screenshots and logs that CI keeps (test-artifacts/)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def platform(tmp_path_factory):
    from gpulab.platform import LocalPlatform, PlatformConfig, free_port
    from tests.extension.conftest import extension_hub_config

    state_dir = tmp_path_factory.mktemp("platform")
    config = PlatformConfig(
        state_dir=state_dir,
        policy_path=E2E_POLICY,
        port=free_port(),
        nodes=os.environ.get("GPULAB_TEST_NODES", "2x4"),
        # Servers report activity every second and the culler runs every 2 s, so that tests
        # of reporting and culling do not wait (the e2e policy's idle rules are long).
        extra_hub_config=extension_hub_config(),
        cull_interval=2.0,
    )
    platform = LocalPlatform(config)
    platform.start()
    yield platform
    platform.stop()
