"""kubesim's CronJob controller, on an in-process kubesim whose CronJob clock runs 60 times
faster than wall time (a minute a second), driven over its HTTP API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from gpulab.kubesim.config import KubesimConfig
from gpulab.kubesim.main import KubeSim

NS = "crons"
BATCH = f"/apis/batch/v1/namespaces/{NS}"
WAIT_SECONDS = 30  # a deadline, not a speed assertion


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[aiohttp.ClientSession]:
    sim = KubeSim(KubesimConfig(data_dir=tmp_path / "data", cron_clock_speed=60))
    await sim.start()
    try:
        async with aiohttp.ClientSession(sim.url) as http:
            async with http.post("/api/v1/namespaces", json={"metadata": {"name": NS}}) as r:
                assert r.status == 201
            yield http
    finally:
        await sim.stop()


async def wait_for(what: str, fn: Callable[[], Awaitable[Any]]) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    last: Any = None
    while time.monotonic() < deadline:
        if last := await fn():
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def cronjob(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {
            "schedule": spec.pop("schedule", "* * * * *"),
            "jobTemplate": {
                "metadata": {"labels": {"team": "vision"}, "annotations": {"note": "n"}},
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [
                                {"name": "main", "image": "busybox", "command": command}
                            ],
                        }
                    }
                },
            },
            **spec,
        },
    }


async def create(http: aiohttp.ClientSession, body: dict[str, Any]) -> dict[str, Any]:
    async with http.post(f"{BATCH}/cronjobs", json=body) as r:
        assert r.status == 201, await r.text()
        return await r.json()


async def get(http: aiohttp.ClientSession, path: str) -> dict[str, Any]:
    async with http.get(path) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def jobs_of(http: aiohttp.ClientSession, uid: str) -> list[dict[str, Any]]:
    items = (await get(http, f"{BATCH}/jobs"))["items"]
    return [
        j for j in items if any(r["uid"] == uid for r in j["metadata"].get("ownerReferences") or [])
    ]


async def events(http: aiohttp.ClientSession, reason: str) -> list[dict[str, Any]]:
    items = (await get(http, f"/api/v1/namespaces/{NS}/events"))["items"]
    return [e for e in items if e.get("reason") == reason]


async def test_a_due_schedule_creates_a_job_named_by_its_minute_with_owner_and_labels(
    api: aiohttp.ClientSession,
) -> None:
    cj = await create(api, cronjob("nightly", ["true"]))
    uid = cj["metadata"]["uid"]
    job = (await wait_for("a run", lambda: jobs_of(api, uid)))[0]
    status = (await get(api, f"{BATCH}/cronjobs/nightly"))["status"]
    scheduled = job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
    minutes = int(job["metadata"]["name"].removeprefix("nightly-"))
    assert job["metadata"]["name"] == f"nightly-{minutes}"
    assert scheduled.endswith("+00:00") and status["lastScheduleTime"]
    assert job["metadata"]["labels"]["team"] == "vision"
    assert job["metadata"]["annotations"]["note"] == "n"
    ref = job["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["controller"]) == ("CronJob", "nightly", True)


async def test_status_lists_the_active_run(api: aiohttp.ClientSession) -> None:
    await create(api, cronjob("busy", ["sleep", "30"], concurrencyPolicy="Forbid"))

    async def active() -> list[dict[str, Any]]:
        return (await get(api, f"{BATCH}/cronjobs/busy")).get("status", {}).get("active") or []

    ref = (await wait_for("an active run", active))[0]
    assert ref["kind"] == "Job" and ref["name"].startswith("busy-")


async def test_forbid_skips_a_firing_while_a_run_is_active(api: aiohttp.ClientSession) -> None:
    cj = await create(api, cronjob("solo", ["sleep", "30"], concurrencyPolicy="Forbid"))
    await wait_for("a skipped firing", lambda: events(api, "JobAlreadyActive"))
    assert len(await jobs_of(api, cj["metadata"]["uid"])) == 1


async def test_allow_runs_firings_side_by_side(api: aiohttp.ClientSession) -> None:
    cj = await create(api, cronjob("many", ["sleep", "30"]))
    uid = cj["metadata"]["uid"]
    await wait_for("two runs at once", lambda: _at_least(jobs_of(api, uid), 2))


async def test_replace_deletes_the_active_run_for_the_new_one(api: aiohttp.ClientSession) -> None:
    cj = await create(api, cronjob("fresh", ["sleep", "30"], concurrencyPolicy="Replace"))
    await wait_for("a replaced run", lambda: events(api, "SuccessfulDelete"))
    assert len(await jobs_of(api, cj["metadata"]["uid"])) == 1


async def test_a_suspended_cronjob_starts_nothing_until_resumed(
    api: aiohttp.ClientSession,
) -> None:
    cj = await create(api, cronjob("held", ["true"], suspend=True))
    uid = cj["metadata"]["uid"]
    deadline = time.monotonic() + 3  # three controller minutes: three firings if not suspended
    while time.monotonic() < deadline:
        assert await jobs_of(api, uid) == []
        await asyncio.sleep(0.2)
    async with api.patch(
        f"{BATCH}/cronjobs/held",
        json={"spec": {"suspend": False}},
        headers={"Content-Type": "application/merge-patch+json"},
    ) as r:
        assert r.status == 200
    await wait_for("a run after resume", lambda: jobs_of(api, uid))


async def test_finished_runs_beyond_the_history_limit_are_deleted(
    api: aiohttp.ClientSession,
) -> None:
    cj = await create(api, cronjob("short", ["true"], successfulJobsHistoryLimit=1))
    uid = cj["metadata"]["uid"]
    await wait_for("an old run deleted", lambda: events(api, "SuccessfulDelete"))

    async def complete_runs() -> list[dict[str, Any]]:
        return [
            j
            for j in await jobs_of(api, uid)
            if any(c["type"] == "Complete" for c in j.get("status", {}).get("conditions") or [])
        ]

    assert len(await complete_runs()) <= 1
    status = (await get(api, f"{BATCH}/cronjobs/short"))["status"]
    assert status["lastSuccessfulTime"]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"schedule": "61 * * * *"}, "spec.schedule"),
        ({"schedule": "TZ=UTC 0 2 * * *"}, "spec.schedule"),
        ({"timeZone": "Mars/Olympus"}, "spec.timeZone"),
        ({"concurrencyPolicy": "Sometimes"}, "spec.concurrencyPolicy"),
        ({"successfulJobsHistoryLimit": -1}, "spec.successfulJobsHistoryLimit"),
    ],
)
async def test_an_invalid_cronjob_is_refused_naming_the_field(
    api: aiohttp.ClientSession, spec: dict[str, Any], field: str
) -> None:
    async with api.post(f"{BATCH}/cronjobs", json=cronjob("bad", ["true"], **spec)) as r:
        assert r.status == 422
        causes = (await r.json())["details"]["causes"]
    assert field in {c["field"] for c in causes}


async def _at_least(items: Awaitable[list[Any]], n: int) -> list[Any] | None:
    got = await items
    return got if len(got) >= n else None
