"""The CPU-only user who filled the GPU nodes: carol (no group: the e2e policy's ``default``
group, CPU only) submitted two jobs asking for more CPU and memory than her profiles give a
server, which took the nodes' CPUs and left bob's in-quota GPU job Pending with GPUs free.
Now such jobs are refused at submit with the fields named and the allowed maximum (the
default cap: her cpu profile's limit, 2 CPUs and 4Gi), no Job is created, and bob's GPU job
runs."""

from __future__ import annotations

import pytest
from gateway_testlib import command_job

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
