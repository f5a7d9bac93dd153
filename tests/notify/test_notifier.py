"""The gateway's notifier on a real API server (kubesim in this process) and its watch cache:
a job that ends is told to its owner by e-mail and webhook, a failed delivery is retried, the
outcome is recorded on the Job, and a restarted gateway sends nothing twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from gpulab.hub.jobs.gateway.cache import ClusterCache
from gpulab.hub.jobs.gateway.kube import Kube
from gpulab.hub.jobs.gateway.notifier import Notifier, NotifyConfig
from gpulab.hub.jobs.gateway.notify_delivery import Backoff, SmtpConfig
from gpulab.hub.jobs.gateway.notify_events import notified
from gpulab.hub.jobs.gateway.notify_settings import NotifySettings
from gpulab.hub.jobs.gateway.notify_store import NotifyStore
from gpulab.kubesim.config import KubesimConfig
from gpulab.kubesim.main import KubeSim
from notify_jobs import job
from notify_receivers import SmtpServer, WebhookReceiver, until


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[Kube]:
    config = KubesimConfig(data_dir=tmp_path / "data", nodes=[], bookmark_interval=0.2)
    async with KubeSim(config) as sim:
        client = await Kube.connect(
            str(sim.kubeconfig_path), user_agent="gpulab-test/0", namespace="default"
        )
        try:
            yield client
        finally:
            await client.close()


def _notifier(kube: Kube, cache: ClusterCache, smtp: SmtpServer) -> Notifier:
    async def annotate(job_id: str, annotations: dict[str, str]) -> None:
        patched = await kube.request(
            "PATCH",
            kube.jobs_path(job_id),
            body={"metadata": {"annotations": annotations}},
            content_type="application/merge-patch+json",
        )
        cache.put_job(patched)

    config = NotifyConfig(
        smtp=SmtpConfig(host="127.0.0.1", port=smtp.port, security="none"),
        base_url="https://gw.example.org/services/jobs-gateway/",
        allow_hosts=("127.0.0.1",),
        backoff=Backoff(attempts=4, first=0.05, factor=2.0),
    )
    return Notifier(cache=cache, store=NotifyStore(kube), annotate=annotate, config=config)


async def _finished_job(kube: Kube, name: str) -> None:
    await kube.request("POST", kube.jobs_path(), body=job(name, owner="alice"))
    await kube.request(
        "PATCH",
        kube.jobs_path(name) + "/status",
        body={"status": job(name, complete=True)["status"]},
        content_type="application/merge-patch+json",
    )


async def _set_up(kube: Kube, hook: WebhookReceiver, email: str) -> None:
    settings = NotifySettings(email=email, webhook_url=hook.url)
    await NotifyStore(kube).save("alice", settings)


async def _run_until_recorded(kube: Kube, smtp: SmtpServer, job_id: str) -> ClusterCache:
    cache = ClusterCache(kube)
    cache.start()
    notifier = _notifier(kube, cache, smtp)
    task = asyncio.get_running_loop().create_task(notifier.run_forever())

    def delivered() -> bool:
        current = cache.job(job_id)
        status = notified(current or {}).get("succeeded", {}).get("status")
        return status in ("delivered", "failed")

    try:
        await until(delivered)
    finally:
        task.cancel()
        await notifier.stop()
        await cache.stop()
    return cache


async def test_an_ended_job_is_told_by_email_and_webhook_with_a_retry(
    kube: Kube, hook: WebhookReceiver, smtp_server: SmtpServer
) -> None:
    hook.reset(script=[503])  # the receiver fails the first delivery
    await _set_up(kube, hook, "owner-1@example.org")
    await _finished_job(kube, "job-one")
    cache = await _run_until_recorded(kube, smtp_server, "job-one")
    record = notified(cache.job("job-one") or {})["succeeded"]
    channels = {c["channel"]: c for c in record["channels"]}
    assert record["status"] == "delivered"
    assert channels["webhook"]["attempts"] == 2
    (message,) = smtp_server.messages_to("owner-1@example.org")
    assert "job-one" in message["Subject"]


async def test_a_restarted_gateway_does_not_notify_again(
    kube: Kube, hook: WebhookReceiver, smtp_server: SmtpServer
) -> None:
    await _set_up(kube, hook, "owner-2@example.org")
    await _finished_job(kube, "job-two")
    await _run_until_recorded(kube, smtp_server, "job-two")
    cache = ClusterCache(kube)  # a new gateway: nothing in memory, the Job's record only
    cache.start()
    try:
        await cache.wait_synced(30)
        assert await _notifier(kube, cache, smtp_server).scan() == []
    finally:
        await cache.stop()
    assert len(smtp_server.messages_to("owner-2@example.org")) == 1
    assert len(hook.received) == 1
