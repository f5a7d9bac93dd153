"""The CPU-only user who filled the GPU nodes: carol (no group: the e2e policy's ``default``
group, CPU only) submitted two jobs asking for more CPU and memory than her profiles give a
server, which took the nodes' CPUs and left bob's in-quota GPU job Pending with GPUs free.
Now such jobs are refused at submit with the fields named and the allowed maximum (the
default cap: her cpu profile's limit, 2 CPUs and 4Gi), no Job is created, and bob's GPU job
runs. A server is held to its group's CPU quota the same way."""

from __future__ import annotations

import time
import urllib.error
import uuid

import pytest
from gateway_testlib import NAMESPACE, command_job
from gpulab.hub.workload.security import CONTAINER_SECURITY_CONTEXT, POD_SECURITY_CONTEXT

from tests.kubesim.kubesim_testlib import pod

pytestmark = [pytest.mark.e2e, pytest.mark.ceph]

HOG = "import time; time.sleep(600)"
ATTACKS = {
    "beyond any node": ("1024", "64Ti"),
    "a whole node each": ("16", "60Gi"),  # kubesim's nodes: 16 CPUs, 64Gi
}


def _carols_jobs(gw) -> int:
    return len(gw.kubesim.jobs("app.kubernetes.io/managed-by=gpulab,gpulab.io/user=carol"))


@pytest.mark.parametrize(("cpu", "memory"), ATTACKS.values(), ids=ATTACKS.keys())
def test_carols_two_big_cpu_jobs_are_refused_naming_cpu_and_memory(gw, cpu, memory):
    before = _carols_jobs(gw)
    with gw.client("carol") as c:
        for i in range(2):
            spec = command_job(f"hog-{i}", HOG, cpu=cpu, memory=memory)
            r = c.post("/jobs", json=spec)
            assert r.status_code == 422, r.text
            problems = {p["field"]: p for p in r.json()["problems"]}
            assert set(problems) == {"cpu", "memory"}, problems
            assert problems["cpu"]["allowed"] == "at most 2"
            assert problems["memory"]["allowed"] == "at most 4Gi"
            assert problems["cpu"]["code"] == problems["memory"]["code"] == "policy"
    assert _carols_jobs(gw) == before


def test_bobs_gpu_job_runs_after_carols_attempt(gw):
    with gw.client("carol") as c:
        for i in range(2):
            r = c.post("/jobs", json=command_job(f"hog-{i}", HOG, cpu="1024", memory="64Ti"))
            assert r.status_code == 422, r.text
    with gw.client("bob") as b:
        spec = command_job(
            "gpu-train",
            "print('trained', flush=True)",
            image="harbor.local/nlp/pytorch:2.4-cuda12.4",
            gpus=1,
        )
        r = b.post("/jobs", json=spec)
        assert r.status_code == 201, r.text
        job = r.json()
    done = gw.wait_state("bob", job["id"], ("Succeeded", "Failed"), timeout=180)
    assert done["state"] == "Succeeded", done


# ----------------------------------------------------------------------------- servers

CPU_IMAGE = "harbor.local/shared/scipy:2024.10"


def _hog_pod(name: str) -> dict:
    """A Pending pod charged to the default group, requesting all its 16 CPUs (it never
    runs: no node has the label it selects)."""
    labels = {
        "app.kubernetes.io/managed-by": "gpulab",
        "gpulab.io/user": "someone-else",
        "gpulab.io/group": "default",
        "gpulab.io/gpus": "0",
    }
    # gpulab's own security contexts: the namespace enforces Pod Security "restricted".
    body = pod(name, labels=labels, securityContext=dict(POD_SECURITY_CONTEXT))
    main = body["spec"]["containers"][0]
    main["resources"] = {"requests": {"cpu": "16", "memory": "1Gi"}}
    main["securityContext"] = dict(CONTAINER_SECURITY_CONTEXT)
    return body


def _start(platform, name: str) -> tuple[int, str]:
    try:
        platform.api(
            "POST", f"/hub/api/users/{name}/server", {"profile": "cpu", "image": CPU_IMAGE}
        )
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    return 201, ""


def _stop(platform, name: str) -> None:
    try:
        platform.api("DELETE", f"/hub/api/users/{name}/server")
    except urllib.error.HTTPError:
        pass
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if "" not in platform.api("GET", f"/hub/api/users/{name}")["servers"]:
            return
        time.sleep(0.5)


def test_a_cpu_server_is_refused_while_its_groups_cpu_quota_is_full(gw):
    platform = gw.platform
    name = f"cpu-{uuid.uuid4().hex[:6]}"
    platform.api("POST", f"/hub/api/users/{name}")  # in no group: the default group
    hog = f"hog-{name}"
    gw.kubesim.create(f"/api/v1/namespaces/{NAMESPACE}/pods", _hog_pod(hog))
    try:
        deadline = time.monotonic() + 30
        status, body = 0, ""
        while time.monotonic() < deadline:  # until the hub's pod cache has seen the hog
            status, body = _start(platform, name)
            if status == 403:
                break
            _stop(platform, name)
            time.sleep(0.5)
        assert status == 403, body
        assert "group 'default' already holds 16 of its 16 CPUs" in body
    finally:
        gw.kubesim.http.delete(
            f"/api/v1/namespaces/{NAMESPACE}/pods/{hog}", params={"gracePeriodSeconds": "0"}
        ).raise_for_status()
    # Once the hog is gone, the same start goes through.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, body = _start(platform, name)
        if status != 403:
            break
        time.sleep(0.5)
    try:
        assert status in (201, 202), body
    finally:
        _stop(platform, name)
