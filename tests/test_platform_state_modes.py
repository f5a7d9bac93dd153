"""The local platform's state dir is its user's alone: the hub database, the logs, the tokens
and the kubeconfig are owner-only (pods run as other uids, and see none of it anyway), while
the shared datasets stay readable by every pod and writable only by the admin."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpulab.platform import LocalPlatform, PlatformConfig, free_port


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    state_dir = tmp_path_factory.mktemp("state")
    state_dir.chmod(0o755)  # as a fresh folder under a default umask
    config = PlatformConfig(state_dir=state_dir, port=free_port(), s3=False, demo_users=False)
    platform = LocalPlatform(config)
    platform.start()
    try:
        yield platform
    finally:
        platform.stop()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_dir_is_owner_only(started: LocalPlatform) -> None:
    assert _mode(started.state_dir) == 0o700


def test_hub_db_logs_tokens_and_kubeconfig_are_owner_only(started: LocalPlatform) -> None:
    names = [
        "jupyterhub.sqlite",
        "jupyterhub_cookie_secret",
        "jupyterhub_config.py",
        "launcher-token",
        "kubeconfig",
        "kubesim.log",
        "jupyterhub.log",
        "kubesim-audit.jsonl",
    ]
    modes = {name: _mode(started.state_dir / name) & 0o077 for name in names}
    assert modes == dict.fromkeys(names, 0)


def test_kubesim_data_dir_is_owner_only(started: LocalPlatform) -> None:
    data = started.state_dir / "kubesim"
    assert {str(p): _mode(p) for p in (data, data / "volumes", data / "volumes" / "default")} == {
        str(p): 0o700 for p in (data, data / "volumes", data / "volumes" / "default")
    }


def test_shared_dataset_is_readable_by_all_writable_by_the_admin(started: LocalPlatform) -> None:
    folder = started.state_dir / "kubesim" / "volumes" / "default" / "dataset-imagenet-mini"
    st = folder.stat()
    assert (st.st_uid, _mode(folder)) == (os.geteuid(), 0o755)
    assert _mode(folder / "labels.csv") & 0o022 == 0
