"""Session fixture ``ext_platform``: the real platform (kubesim + Ceph RGW + JupyterHub + proxy)
(the launcher registers the jobs gateway and the culler) with gpulab's server extension active in
the kubesim-run ``jupyterhub-singleuser`` servers, reporting every second.

Until ``hub/config.py`` enables the extension in local mode, :func:`extension_hub_config` does
it through ``PlatformConfig.extra_hub_config``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "tests" / "e2e" / "policy.yaml"
NAMESPACE = "default"


def extension_hub_config() -> str:
    """What the kubesim-run servers need for gpulab's server extension (an editable install
    has no data files, so ``jupyter_server_config.d/gpulab.json`` is found through
    ``JUPYTER_CONFIG_PATH``), and a 1 s report interval so that tests see reports quickly."""
    return f"""
c.KubeSpawner.environment = {{"JUPYTER_CONFIG_PATH": {str(ROOT / "jupyter-config")!r}}}
c.KubeSpawner.args = ["--GPULabExtension.report_interval=1"]
"""


@dataclass
class ExtPlatform:
    platform: Any
    kubesim: Any

    @property
    def hub_url(self) -> str:
        return self.platform.hub_url


@pytest.fixture(scope="session")
def ext_platform(tmp_path_factory) -> Iterator[ExtPlatform]:
    from gpulab.platform import LocalPlatform, PlatformConfig, ceph_available, free_port
    from tests.gateway.gateway_testlib import Kubesim, pvc

    if not ceph_available():
        pytest.skip("Ceph (ceph-mon, ceph-osd, radosgw) is not installed")
    config = PlatformConfig(
        state_dir=tmp_path_factory.mktemp("ext-platform"),
        policy_path=POLICY,
        port=free_port(),
        nodes=os.environ.get("GPULAB_TEST_NODES", "2x4"),
        extra_hub_config=extension_hub_config(),
        cull_interval=1.0,
    )
    platform = LocalPlatform(config)
    platform.start()
    try:
        sim = Kubesim(platform.kubesim_url)
        sim.create(
            f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims", pvc("dataset-imagenet-mini")
        )
        yield ExtPlatform(platform, sim)
    finally:
        platform.stop()
