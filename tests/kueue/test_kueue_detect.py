"""At start, gpulab asks whether the cluster serves Kueue's v1beta2 API."""

from __future__ import annotations

from gpulab.hub.kube import KubeClient
from gpulab.hub.kueue.detect import detect_kueue
from gpulab.kubesim.main import KubeSim

from tests.kueue.conftest import connect


async def test_a_cluster_serving_kueue_v1beta2_is_used(kube: KubeClient) -> None:
    status = await detect_kueue(kube)
    assert status.available and "v1beta2" in status.served_versions


async def test_a_cluster_without_kueue_is_said_so_and_gpulab_admits_itself(
    plain_sim: KubeSim,
) -> None:
    client = await connect(plain_sim)
    try:
        status = await detect_kueue(client)
    finally:
        await client.close()
    assert not status.available
    assert status.message.startswith("Kueue is not installed")
    assert "gpulab admits servers and jobs itself" in status.message
