"""Session fixture ``ext_platform``: the real platform (kubesim + Ceph RGW + JupyterHub + proxy)
(the launcher registers the jobs gateway and the culler) with gpulab's server extension active in
the kubesim-run ``jupyterhub-singleuser`` servers, reporting every second.

The launcher enables the extension in local mode; :func:`extension_hub_config` adds the short
report interval (tests/conftest.py passes it to the shared platform).
"""

from __future__ import annotations

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
    return """
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
def ext_platform(platform) -> Iterator[ExtPlatform]:
    """The shared session platform (tests/conftest.py), which enables the extension and a
    short report interval; the dataset claim comes from the launcher."""
    from tests.gateway.gateway_testlib import Kubesim

    if platform.s3 is None:
        pytest.skip("Ceph (ceph-mon, ceph-osd, radosgw) is not installed")
    yield ExtPlatform(platform, Kubesim.of(platform))
