"""A real Ceph S3 gateway (RGW) for the tests in this folder, started once per session.

``ceph_s3`` runs ``gpulab/microceph.sh start`` (or ``$GPULAB_MICROCEPH_SH``) with its
own ``MC_DIR`` under pytest's tmp dir and free ports, with an HTTPS endpoint too, and yields
the endpoints and the keys of its two users (alice, bob). It stops the cluster at the end.
``another_microceph`` starts a second cluster beside it for one test.
Tests are skipped, with the reason, only when the Ceph packages are not installed
(``apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw ceph-common``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gpulab.platform import free_port


@dataclass(frozen=True)
class CephS3:
    endpoint: str  # http://127.0.0.1:PORT
    tls_endpoint: str  # https://127.0.0.1:PORT (self-signed)
    ca_bundle: str  # PEM file that signs tls_endpoint
    alice_key: str
    alice_secret: str
    bob_key: str
    bob_secret: str
    ceph_conf: str
    mc_dir: Path


def _read_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def _require_ceph() -> Path:
    missing = [b for b in ("ceph-mon", "ceph-osd", "radosgw", "ceph") if shutil.which(b) is None]
    if missing:
        pytest.skip(
            f"Ceph is not installed ({', '.join(missing)} missing): apt-get install -y "
            "--no-install-recommends ceph-mon ceph-osd radosgw ceph-common"
        )
    from gpulab.platform import find_microceph

    script = find_microceph()  # gpulab/microceph.sh unless $GPULAB_MICROCEPH_SH
    if script is None:
        pytest.fail("microceph.sh not found (gpulab/microceph.sh, or set $GPULAB_MICROCEPH_SH)")
    return script


@contextlib.contextmanager
def running_microceph(mc_dir: Path) -> Iterator[CephS3]:
    """``microceph.sh start`` in ``mc_dir`` on free ports (HTTPS too); stopped on exit."""
    script = _require_ceph()
    env = {
        **os.environ,
        "MC_DIR": str(mc_dir),
        "RGW_PORT": str(free_port()),
        "RGW_TLS_PORT": str(free_port()),
        "MON_V2_PORT": str(free_port()),
        "MON_V1_PORT": str(free_port()),
    }
    started = subprocess.run(
        ["bash", script, "start"], env=env, capture_output=True, text=True, timeout=300
    )
    try:
        if started.returncode != 0:
            pytest.fail(
                f"microceph.sh start failed ({started.returncode}):\n{started.stderr[-3000:]}"
            )
        values = _read_env(mc_dir / "s3.env")
        yield CephS3(
            endpoint=values["S3_ENDPOINT"],
            tls_endpoint=values["S3_TLS_ENDPOINT"],
            ca_bundle=values["S3_CA_BUNDLE"],
            alice_key=values["S3_ACCESS_KEY"],
            alice_secret=values["S3_SECRET_KEY"],
            bob_key=values["S3_ACCESS_KEY_2"],
            bob_secret=values["S3_SECRET_KEY_2"],
            ceph_conf=values.get("CEPH_CONF", str(mc_dir / "ceph.conf")),
            mc_dir=mc_dir,
        )
    finally:
        subprocess.run(
            ["bash", script, "stop"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture(scope="session")
def ceph_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CephS3]:
    _require_ceph()
    with running_microceph(tmp_path_factory.mktemp("microceph") / "cluster") as ceph:
        yield ceph


@pytest.fixture
def another_microceph(tmp_path: Path, ceph_s3: CephS3) -> Iterator[CephS3]:
    """A second cluster of microceph.sh beside the session's (for what must differ per cluster)."""
    with running_microceph(tmp_path / "cluster") as ceph:
        yield ceph
