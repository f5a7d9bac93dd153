"""Spawner test fixtures: KubeSpawner objects without a hub (the pure parts need none), and the
spawner's own end-to-end platform with a real OIDC provider."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
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


# ----------------------------------------------------------------------------- end to end
#
# The shared `platform` (tests/conftest.py) logs users in with the local shared password. The
# spawner's own end-to-end platform differs in what only a second hub can show: login through a
# real OIDC provider on loopback (oidc-provider-mock) whose group claim decides the groups, a
# policy where nlp waits at most 15 s for GPUs and a deleted user's home is snapshotted
# (tests/spawner/policy-spawner.yaml). No Ceph (no test here needs S3), no demo users.

SPAWNER_POLICY = Path(__file__).resolve().parent / "policy-spawner.yaml"

# Subjects the provider knows, with the claims the hub reads (userinfo, scope "openid profile").
OIDC_USERS: dict[str, dict[str, object]] = {
    "sub-nina": {"preferred_username": "nina", "groups": ["nlp"]},
    "sub-victor": {"preferred_username": "victor", "groups": ["vision", "ignored-team"]},
    "sub-carl": {"preferred_username": "carl", "groups": []},
}


@dataclass
class OidcProvider:
    url: str
    log_path: Path


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """oidc-provider-mock as a real HTTP server on a free loopback port, with the OIDC_USERS
    subjects and their claims seeded (``--user-claims``)."""
    from gpulab.platform import free_port

    port = free_port()
    log_path = tmp_path_factory.mktemp("oidc") / "oidc-provider.log"
    argv = [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port)]
    for sub, claims in OIDC_USERS.items():
        argv += ["--user-claims", json.dumps({"sub": sub, **claims})]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"oidc-provider-mock exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/.well-known/openid-configuration", timeout=2).is_success:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"oidc-provider-mock did not answer: {log_path}")
            time.sleep(0.2)
        yield OidcProvider(url, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="session")
def spawner_platform(
    tmp_path_factory: pytest.TempPathFactory, oidc_provider: OidcProvider
) -> Iterator[Any]:
    """kubesim (2 nodes x 4 GPUs) + JupyterHub + the real proxy, configured by
    ``gpulab.hub.config.configure`` with OIDC from the environment (``oidc_settings``)."""
    from gpulab.platform import LocalPlatform, PlatformConfig, free_port

    issuer = oidc_provider.url
    env = {
        "GPULAB_OIDC_ISSUER": issuer,
        "GPULAB_OIDC_AUTHORIZE_URL": f"{issuer}/oauth2/authorize",
        "GPULAB_OIDC_TOKEN_URL": f"{issuer}/oauth2/token",
        "GPULAB_OIDC_USERINFO_URL": f"{issuer}/userinfo",
        "GPULAB_OIDC_CLIENT_ID": "gpulab-hub",
        "GPULAB_OIDC_CLIENT_SECRET": "not-checked-by-the-mock",
        "GPULAB_OIDC_LOGIN_SERVICE": "Test IdP",
        # auth state persisted (and encrypted), as z2jh runs it
        "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32),
    }
    config = PlatformConfig(
        state_dir=tmp_path_factory.mktemp("spawner-platform"),
        policy_path=SPAWNER_POLICY,
        port=free_port(),
        nodes="2x4",
        s3=False,
        demo_users=False,
        hub_env=env,
    )
    platform = LocalPlatform(config)
    platform.start()
    try:
        yield platform
    finally:
        platform.stop()
