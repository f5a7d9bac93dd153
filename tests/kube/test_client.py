"""gpulab.hub.kube.KubeClient against kubesim: the configuration fallback, the one error type,
paginated lists, the three patch kinds, delete, and waiting for one object."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from gpulab.hub.kube import KubeClient, KubeError, load_configuration, resource_path
from gpulab.kubesim.main import KubeSim

CONFIGMAPS = resource_path("v1", "configmaps", "default")


def test_resource_paths() -> None:
    assert resource_path("v1", "pods", "ns", "p") == "/api/v1/namespaces/ns/pods/p"
    assert resource_path("v1", "nodes") == "/api/v1/nodes"
    assert resource_path("batch/v1", "jobs", "ns") == "/apis/batch/v1/namespaces/ns/jobs"


async def test_configuration_falls_back_to_the_default_kubeconfig(
    sim: KubeSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(KubeError) as missing:
        await load_configuration()
    assert (missing.value.status, missing.value.reason) == (0, "NoConfiguration")
    (tmp_path / ".kube").mkdir()
    shutil.copy(sim.kubeconfig_path, tmp_path / ".kube" / "config")
    assert (await load_configuration()).host == sim.url
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "elsewhere"))
    with pytest.raises(KubeError):  # an explicit kubeconfig that is not there is an error
        await load_configuration()


async def test_calls_and_their_one_error_type(kube: KubeClient) -> None:
    for i in range(5):
        await kube.create(CONFIGMAPS, {"metadata": {"name": f"cm-{i}"}, "data": {"a": "1"}})
    items, rv = await kube.list(CONFIGMAPS, page_size=2)
    assert sorted(o["metadata"]["name"] for o in items) == [f"cm-{i}" for i in range(5)]
    assert int(rv) > 0
    with pytest.raises(KubeError) as conflict:
        await kube.create(CONFIGMAPS, {"metadata": {"name": "cm-0"}})
    assert (conflict.value.status, conflict.value.reason) == (409, "AlreadyExists")
    assert await kube.get(f"{CONFIGMAPS}/nope") is None
    one = f"{CONFIGMAPS}/cm-0"
    await kube.patch(one, {"data": {"b": "2"}})
    await kube.patch(one, {"data": {"c": "3"}}, kind="strategic")
    await kube.patch(one, [{"op": "remove", "path": "/data/a"}], kind="json")
    assert (await kube.get(one) or {})["data"] == {"b": "2", "c": "3"}
    assert await kube.delete(one) is not None
    assert await kube.delete(one) is None


async def test_wait_for_watches_one_object(kube: KubeClient) -> None:
    async def later() -> None:
        await asyncio.sleep(0.3)
        await kube.create(CONFIGMAPS, {"metadata": {"name": "awaited"}})

    task = asyncio.create_task(later())
    got = await kube.wait_for(CONFIGMAPS, "awaited", lambda o: o is not None, 10)
    await task
    assert got is not None and got["metadata"]["name"] == "awaited"
    with pytest.raises(TimeoutError):
        await kube.wait_for(CONFIGMAPS, "never", lambda o: o is not None, 0.5)
