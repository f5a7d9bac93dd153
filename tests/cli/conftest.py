"""Shared fixtures of the CLI tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def no_hub(monkeypatch, tmp_path):
    """A laptop with no login and no hub in the environment, no server around."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    for name in (
        "GPULAB_HUB_URL",
        "GPULAB_TOKEN",
        "GPULAB_GATEWAY_URL",
        "JUPYTERHUB_API_TOKEN",
        "JUPYTERHUB_API_URL",
    ):
        monkeypatch.delenv(name, raising=False)
