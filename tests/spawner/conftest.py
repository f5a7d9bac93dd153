"""Spawner test fixtures: KubeSpawner objects without a hub (the pure parts need none)."""

from __future__ import annotations

from pathlib import Path

import pytest

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: offline, cluster: {server: "http://127.0.0.1:9"}}]
users: [{name: offline, user: {token: offline}}]
contexts: [{name: offline, context: {cluster: offline, user: offline, namespace: gpulab}}]
current-context: offline
"""


@pytest.fixture
def offline_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """KubeSpawner loads a kubeconfig in __init__; these tests never call the API."""
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(path))
    # kubernetes_asyncio reads $KUBECONFIG once, when it is imported (possibly before this
    # fixture); point its default at the offline file the same way.
    from kubernetes_asyncio.config import kube_config

    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    return path
