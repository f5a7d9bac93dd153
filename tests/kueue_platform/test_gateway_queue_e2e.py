"""Jobs queued by Kueue, end to end on the Kueue platform (one node of 4 GPUs; vision's 2 GPUs
are alice's, nlp's 2 are bob's and lent while idle): a submit over quota waits as Queued with
its place and reason and runs when GPUs free; cancel while queued; a borrowing job preempted by
the lender, requeued and resumed from its checkpoint; the max-queued 429."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.gateway.gateway_testlib import NAMESPACE, GatewayEnv, command_job

SLEEP = "import time; print('running', flush=True); time.sleep(600)"
# Writes a checkpoint and works on; a run that finds the checkpoint resumes from it and ends.
CHECKPOINTED = """
import os, pathlib, time
ck = pathlib.Path(os.environ["GPULAB_CHECKPOINT_DIR"]) / "step"
if ck.exists():
    print("resumed from step", ck.read_text(), flush=True)
else:
    ck.write_text("1")
    print("checkpoint written", flush=True)
    time.sleep(600)
"""


def _gpu_job(name: str, script: str = SLEEP, **extra: Any) -> dict[str, Any]:
    return command_job(name, script, gpus=2, **extra)


@contextmanager
def _jobs(kgw: GatewayEnv) -> Iterator[list[tuple[str, str]]]:
    """(user, job id) of the jobs a test submits: all cancelled at its end, so the next test
    finds the quotas free."""
    made: list[tuple[str, str]] = []
    try:
        yield made
    finally:
        for user, job_id in made:
            with kgw.client(user) as c:
                c.delete(f"/jobs/{job_id}")


def _submit(kgw: GatewayEnv, made: list, user: str, spec: dict[str, Any]) -> dict[str, Any]:
    with kgw.client(user) as c:
        r = c.post("/jobs", json=spec)
    assert r.status_code == 201, r.text
    made.append((user, r.json()["id"]))
    return r.json()


def _wait_log(kgw: GatewayEnv, user: str, job_id: str, text: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    log = ""
    with kgw.client(user) as c:
        while time.monotonic() < deadline:
            r = c.get(f"/jobs/{job_id}/logs")
            if r.status_code == 200:
                log = r.text
                if text in log:
                    return log
            time.sleep(0.5)
    raise AssertionError(f"{text!r} never in the log of {job_id}: {log[-800:]!r}")


def _workloads_of(kgw: GatewayEnv, job_id: str) -> list[dict[str, Any]]:
    items = kgw.kubesim.get(f"/apis/kueue.x-k8s.io/v1beta2/namespaces/{NAMESPACE}/workloads")
    return [
        w
        for w in items["items"]
        if any(r.get("name") == job_id for r in w["metadata"].get("ownerReferences") or [])
    ]


def test_submit_over_quota_is_queued_with_place_and_reason_and_runs_when_gpus_free(kgw):
    with _jobs(kgw) as made:
        first = _submit(kgw, made, "alice", _gpu_job("fill"))
        kgw.wait_state("alice", first["id"], ("Running",))
        second = _submit(kgw, made, "alice", _gpu_job("waits"))
        queued = kgw.wait_state("alice", second["id"], ("Queued",))
        assert queued["queue"]["position"] == 1
        assert queued["queue"]["name"] == "alice"
        assert queued["message"].startswith("2 × a100 in vision: next in line")
        assert "2 of 2 GPUs busy" in queued["message"]
        with kgw.client("alice") as c:
            assert c.delete(f"/jobs/{first['id']}").status_code == 202
        kgw.wait_state("alice", second["id"], ("Running",))


def test_cancel_while_queued_removes_the_job_and_its_workload(kgw):
    with _jobs(kgw) as made:
        first = _submit(kgw, made, "alice", _gpu_job("fill"))
        kgw.wait_state("alice", first["id"], ("Running",))
        second = _submit(kgw, made, "alice", _gpu_job("waits"))
        kgw.wait_state("alice", second["id"], ("Queued",))
        with kgw.client("alice") as c:
            r = c.delete(f"/jobs/{second['id']}")
            assert r.status_code == 202, r.text
            assert r.json()["state"] == "Cancelled"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            kgw.kubesim.jobs(f"gpulab.io/job-id={second['id']}") or _workloads_of(kgw, second["id"])
        ):
            time.sleep(0.3)
        assert not kgw.kubesim.jobs(f"gpulab.io/job-id={second['id']}")
        assert not _workloads_of(kgw, second["id"])
        with kgw.client("alice") as c:
            after = c.get(f"/jobs/{second['id']}").json()
        assert after["state"] == "Cancelled" and after["cancelled_by"] == "alice"


def test_borrowing_job_is_preempted_by_the_lender_requeued_and_resumed_from_checkpoint(kgw):
    with _jobs(kgw) as made:
        borrower = _submit(kgw, made, "alice", _gpu_job("borrow", CHECKPOINTED, preemptible=True))
        _wait_log(kgw, "alice", borrower["id"], "checkpoint written")
        lender = _submit(kgw, made, "bob", _gpu_job("reclaim"))
        preempted = kgw.wait_state("alice", borrower["id"], ("Queued",))
        kgw.wait_state("bob", lender["id"], ("Running",))
        with kgw.client("bob") as c:  # the lender is done with its GPUs
            assert c.delete(f"/jobs/{lender['id']}").status_code == 202
        done = kgw.wait_state("alice", borrower["id"], ("Succeeded",), timeout=180)
        assert preempted["message"].startswith("Preempted, requeued (1×)")
        assert done["preemptions"] >= 1 and done["gpu_hours_lost"] > 0
        assert "resumed from step 1" in _wait_log(kgw, "alice", borrower["id"], "resumed")


def test_submit_past_max_queued_is_refused_saying_which_limit(kgw):
    with _jobs(kgw) as made:
        first = _submit(kgw, made, "alice", _gpu_job("fill"))
        kgw.wait_state("alice", first["id"], ("Running",))
        for name in ("wait-one", "wait-two"):
            _submit(kgw, made, "alice", _gpu_job(name))
        with kgw.client("alice") as c:
            r = c.post("/jobs", json=_gpu_job("one-too-many"))
        assert r.status_code == 429, r.text
        assert "jobs.max_queued" in r.json()["error"]
        assert [p["field"] for p in r.json()["problems"]] == ["jobs"]
