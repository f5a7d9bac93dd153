"""The usage recorder against real kubesim list/watch events, on sqlite and PostgreSQL.

gpulab-labelled pods (a 2-GPU named server, a 1-GPU job that runs to completion, a CPU
server) are created in kubesim; the recorder lists and watches them; GPU-seconds per user,
group and kind follow from the pods' own start/finish times. A restarted recorder re-lists
everything and counts nothing twice; a pod deleted while the recorder was down is closed at
its last heartbeat.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from gpulab.hub.culler.service.kube import KubeAccess
from gpulab.hub.usage.models import UsageInterval, make_engine
from gpulab.hub.usage.queries import summarize
from gpulab.hub.usage.recorder import UsageRecorder, parse_time
from kubesim_proc import KubesimProc
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

DEADLINE = 60  # seconds to wait for a state, never an assertion on speed


def gpulab_pod(
    name: str,
    user: str,
    group: str,
    gpus: int,
    *,
    kind: str = "singleuser-server",
    job_id: str | None = None,
    server_name: str | None = None,
    command: list[str] | None = None,
) -> dict[str, Any]:
    labels = {
        "app.kubernetes.io/name": "gpulab",
        "app.kubernetes.io/managed-by": "gpulab",
        "app.kubernetes.io/component": kind,
        "gpulab.io/user": user,
        "gpulab.io/group": group,
        "gpulab.io/gpus": str(gpus),
        "gpulab.io/gpu-type": "a100" if gpus else "",
    }
    annotations = {"hub.jupyter.org/username": user}
    if job_id:
        labels["gpulab.io/job-id"] = job_id
    if server_name:
        annotations["hub.jupyter.org/servername"] = server_name
    resources: dict[str, Any] = {"requests": {"cpu": "250m"}}
    if gpus:
        resources["limits"] = {"nvidia.com/gpu": str(gpus)}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": "harbor.local/shared/base:1",
                    "command": command or ["sleep", "600"],
                    "resources": resources,
                }
            ],
        },
    }


async def wait_for(pred: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(pred)
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def rows(engine: Engine, namespace: str) -> dict[str, UsageInterval]:
    with Session(engine) as s:
        found = s.scalars(select(UsageInterval).where(UsageInterval.namespace == namespace)).all()
        s.expunge_all()
        return {r.pod_name: r for r in found}


def test_recorder_on_kubesim_watch_events(kube: KubesimProc, usage_url: str):
    ns = f"usage-{uuid.uuid4().hex[:8]}"
    kube.api("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    engine = make_engine(usage_url)
    base = f"/api/v1/namespaces/{ns}/pods"

    def pod_status(name: str) -> dict[str, Any]:
        return kube.api("GET", f"{base}/{name}").get("status") or {}

    async def scenario() -> dict[str, Any]:
        access = await KubeAccess.connect(str(kube.kubeconfig), ns)
        assert access is not None
        recorder = UsageRecorder(engine, access.api_client, ns, heartbeat_seconds=0.5)
        try:
            recorder.start()
            await asyncio.wait_for(recorder.synced.wait(), DEADLINE)
            # Created after the first list: seen through the watch only.
            kube.api("POST", base, gpulab_pod("srv-alice", "alice", "vision", 2, server_name="big"))
            kube.api(
                "POST",
                base,
                gpulab_pod(
                    "job-bob",
                    "bob",
                    "nlp",
                    1,
                    kind="job",
                    job_id="j-0001",
                    command=["python", "-c", "import time; time.sleep(1)"],
                ),
            )
            kube.api("POST", base, gpulab_pod("srv-carol", "carol", "default", 0))
            await wait_for(
                lambda: pod_status("job-bob").get("phase") == "Succeeded", "job Succeeded"
            )
            await wait_for(lambda: rows(engine, ns).get("job-bob", None), "job row")
            await wait_for(
                lambda: (r := rows(engine, ns).get("job-bob")) and r.ended_at, "job row closed"
            )
            await wait_for(lambda: len(rows(engine, ns)) == 3, "three rows")
            before_delete = datetime.now(UTC)
            kube.api("DELETE", f"{base}/srv-alice")
            await wait_for(
                lambda: (r := rows(engine, ns).get("srv-alice")) and r.ended_at, "server closed"
            )
            after_seen = datetime.now(UTC)
        finally:
            await recorder.stop()
        job_status = pod_status("job-bob")
        first = rows(engine, ns)
        # Down: carol's server goes away unseen; a new recorder comes up (a hub restart).
        kube.api("DELETE", f"{base}/srv-carol")

        def carol_gone() -> bool:
            try:
                kube.api("GET", f"{base}/srv-carol")
            except Exception:  # noqa: BLE001 - 404: gone
                return True
            return False

        await wait_for(carol_gone, "carol's pod gone")
        again = UsageRecorder(engine, access.api_client, ns, heartbeat_seconds=0.5)
        try:
            again.start()
            await asyncio.wait_for(again.synced.wait(), DEADLINE)
            await again.sync_once()  # and a second re-list, as after a 410 Gone
        finally:
            await again.stop()
            await access.close()
        return {
            "first": first,
            "second": rows(engine, ns),
            "job_status": job_status,
            "before_delete": before_delete,
            "after_seen": after_seen,
        }

    out = asyncio.run(scenario())
    first, second = out["first"], out["second"]
    alice, bob = second["srv-alice"], second["job-bob"]
    # Kinds, owners, groups, GPUs and the named server's name come from the pods.
    assert (alice.kind, alice.user, alice.group, alice.gpus, alice.server_name) == (
        "server",
        "alice",
        "vision",
        2,
        "big",
    )
    assert (bob.kind, bob.job_id, bob.gpus, bob.server_name) == ("job", "j-0001", 1, "")
    # The job's interval is exactly its pod's life as kubesim reports it.
    js = out["job_status"]
    assert bob.started_at == parse_time(js["startTime"])
    finished = max(
        parse_time(cs["state"]["terminated"]["finishedAt"]) for cs in js["containerStatuses"]
    )
    assert bob.ended_at == finished
    # The deleted server closed when it stopped (its container's finishedAt, whole seconds).
    assert out["before_delete"].replace(microsecond=0) <= alice.ended_at <= out["after_seen"]
    # Carol's pod vanished while no recorder ran: closed at its last heartbeat, not later.
    carol_first, carol = first["srv-carol"], second["srv-carol"]
    assert carol_first.ended_at is None and carol.ended_at == carol.last_seen_at
    assert carol.ended_at >= carol_first.last_seen_at
    # Nothing counted twice: the restarted recorder left the closed rows as they were.
    for name in ("srv-alice", "job-bob"):
        assert (second[name].started_at, second[name].ended_at) == (
            first[name].started_at,
            first[name].ended_at,
        )
    assert len(second) == 3
    since = min(r.started_at for r in second.values())
    until = max(r.ended_at for r in second.values())
    by_user = {
        r.key["user"]: r for r in summarize(engine, since, until, by=("user", "group", "kind"))
    }
    assert by_user["alice"].gpu_seconds == pytest.approx(
        2 * (alice.ended_at - alice.started_at).total_seconds()
    )
    assert by_user["bob"].gpu_seconds == pytest.approx(
        (bob.ended_at - bob.started_at).total_seconds()
    )
    assert by_user["bob"].key == {"user": "bob", "group": "nlp", "kind": "job"}
    assert by_user["carol"].gpu_seconds == 0 and by_user["carol"].cpu_seconds > 0
    assert all(r.count == 1 for r in by_user.values())
    engine.dispose()
