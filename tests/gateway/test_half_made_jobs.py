"""Half-made jobs: a Job whose upload Secret was never created must not hold a job slot.

The gateway creates the Job, then its Secret. When the Secret create fails it deletes the Job;
when that delete fails too (or the gateway dies in between), its reconciler fails the Job
after the grace period (60 s by default) and deletes it, keeping it in the owner's history.
"""

from __future__ import annotations

import time

from gateway_testlib import command_job
from gpulab.hub.jobs.gateway.reconcile import HALF_MADE_REASON

SECRETS_CREATE = r"/namespaces/default/secrets$"  # the collection: creates (and lists)
JOB_ITEM = r"/namespaces/default/jobs/[^/]+$"  # one Job: the rollback's delete


def _unfinished(gw, user: str) -> int:
    with gw.client(user) as c:
        r = c.get("/me")
        r.raise_for_status()
        return r.json()["quota"]["jobs_unfinished"]


def _wait_unfinished(gw, user: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _unfinished(gw, user) != count and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _unfinished(gw, user) == count


def _submit_failing(gw, name: str, match: str) -> set[str]:
    """carol submits while kubesim fails every request matching ``match``: the submit must
    answer a clear error about the upload credential. The names of the Jobs it created."""
    before = {j["metadata"]["name"] for j in gw.kubesim.jobs()}
    gw.kubesim.faults(error_rate=1.0, error_codes=[500], match=match)
    try:
        with gw.client("carol") as c:
            r = c.post("/jobs", json=command_job(name, "print(1)"))
    finally:
        gw.kubesim.faults()
    assert r.status_code >= 500, r.text
    assert "upload credential" in r.json()["error"]
    return {j["metadata"]["name"] for j in gw.kubesim.jobs()} - before


def test_secret_create_failure_answers_clearly_and_leaves_no_job(gw):
    before = _unfinished(gw, "carol")
    left = _submit_failing(gw, "halfmade-a", SECRETS_CREATE)
    live = [
        j
        for j in gw.kubesim.jobs()
        if j["metadata"]["name"] in left and not j["metadata"].get("deletionTimestamp")
    ]
    assert live == []
    _wait_unfinished(gw, "carol", before)


def test_job_left_without_its_secret_is_failed_and_frees_its_slot(gw):
    """The Secret create fails and so does the rollback's delete: the Job is left behind
    without its Secret, as if the gateway had died in between."""
    before = _unfinished(gw, "carol")
    (job_id,) = _submit_failing(gw, "halfmade-b", f"(?:{SECRETS_CREATE})|(?:{JOB_ITEM})")
    _wait_unfinished(gw, "carol", before + 1, timeout=10)  # holding a slot: the defect
    job = gw.wait_state("carol", job_id, ("Failed",), timeout=180)
    assert job["message"] == HALF_MADE_REASON
    _wait_unfinished(gw, "carol", before)
    with gw.client("carol") as c:
        listed = [j["id"] for j in c.get("/jobs").json()["items"]]
    assert job_id in listed  # kept in the owner's history, as a cancelled job is
