"""Saved job definitions and schedules through the gateway, on the session platform: the
CronJob the gateway owns, a schedule a minute away firing on kubesim with its run an ordinary
job (own id, credential, outputs), pause/resume, run-now, isolation, the policy dry run."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from gateway_testlib import NAMESPACE, command_job

pytestmark = [pytest.mark.e2e, pytest.mark.ceph]

CRONJOBS = f"/apis/batch/v1/namespaces/{NAMESPACE}/cronjobs"
WRITE_OUTPUT = (
    "import os, pathlib\n"
    "d = pathlib.Path(os.environ['GPULAB_OUTPUT_DIR'] if 'GPULAB_OUTPUT_DIR' in os.environ"
    " else 'outputs')\n"
    "print('scheduled run', os.environ['GPULAB_JOB_ID'], flush=True)\n"
)


def definition(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "spec": command_job(name, WRITE_OUTPUT), **extra}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def cronjob(gw, def_id: str) -> dict[str, Any]:
    return gw.kubesim.get(f"{CRONJOBS}/{def_id}")


def test_a_definition_is_a_cronjob_the_gateway_owns(gw):
    name = unique("nightly")
    with gw.client("alice") as c:
        r = c.post(
            "/definitions",
            json=definition(name, schedule="0 2 * * *", timezone="Asia/Shanghai"),
        )
        assert r.status_code == 201, r.text
        made = r.json()
    assert (made["name"], made["schedule"], made["timezone"]) == (
        name,
        "0 2 * * *",
        "Asia/Shanghai",
    )
    assert made["concurrency_policy"] == "Forbid" and made["paused"] is False
    cj = cronjob(gw, made["id"])
    spec = cj["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["concurrencyPolicy"]) == (
        "0 2 * * *",
        "Asia/Shanghai",
        "Forbid",
    )
    assert spec["successfulJobsHistoryLimit"] > 0 and spec["failedJobsHistoryLimit"] > 0
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert {"name": "gpulab.io/upload-credential"} in pod["schedulingGates"]
    assert cj["metadata"]["labels"]["gpulab.io/user"] == "alice"


def test_a_schedule_a_minute_away_fires_and_its_run_is_an_ordinary_job(gw):
    name = unique("every-minute")
    with gw.client("alice") as c:
        r = c.post("/definitions", json=definition(name, schedule="* * * * *"))
        assert r.status_code == 201, r.text
        deadline = time.monotonic() + 150  # the next minute, then the run's start
        runs: list[str] = []
        while time.monotonic() < deadline and not runs:
            runs = c.get(f"/definitions/{name}").json()["runs"]
            time.sleep(0.5)
        assert runs, "the schedule did not fire"
        assert c.post(f"/definitions/{name}/pause").status_code == 200  # no second run
        run = runs[0]
        done = gw.wait_state("alice", run, ("Succeeded", "Failed"), timeout=180)
        assert done["state"] == "Succeeded", done
        assert f"scheduled run {run}" in c.get(f"/jobs/{run}/logs").text
        listed = [j["id"] for j in c.get("/jobs").json()["items"]]
        assert run in listed
    job = gw.kubesim.get(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/{run}")
    assert job["metadata"]["labels"]["gpulab.io/job-id"] == run  # its own id, not the definition's


def test_pause_and_resume_set_the_cronjobs_suspend(gw):
    name = unique("held")
    with gw.client("alice") as c:
        made = c.post("/definitions", json=definition(name, schedule="@daily")).json()
        paused = c.post(f"/definitions/{name}/pause")
        assert paused.status_code == 200 and paused.json()["paused"] is True
        assert cronjob(gw, made["id"])["spec"]["suspend"] is True
        resumed = c.post(f"/definitions/{name}/resume")
        assert resumed.status_code == 200 and resumed.json()["paused"] is False
        assert cronjob(gw, made["id"])["spec"]["suspend"] is False


def test_run_now_makes_an_ordinary_job_linked_to_the_definition(gw):
    name = unique("adhoc")
    with gw.client("alice") as c:
        made = c.post("/definitions", json=definition(name))  # no schedule: run-now only
        assert made.status_code == 201 and made.json()["schedule"] is None
        r = c.post(f"/definitions/{name}/run-now")
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        assert gw.wait_state("alice", job_id, ("Succeeded", "Failed"))["state"] == "Succeeded"
        assert job_id in c.get(f"/definitions/{name}").json()["runs"]
        assert c.post(f"/definitions/{name}/resume").status_code == 409  # nothing to resume


def test_another_users_definition_answers_404(gw):
    name = unique("private")
    with gw.client("alice") as c:
        assert c.post("/definitions", json=definition(name, schedule="@weekly")).status_code == 201
    with gw.client("bob") as c:
        for method, path in (
            ("GET", f"/definitions/{name}"),
            ("POST", f"/definitions/{name}/run-now"),
            ("POST", f"/definitions/{name}/pause"),
            ("DELETE", f"/definitions/{name}"),
        ):
            assert c.request(method, path).status_code == 404, (method, path)
        assert name not in [d["name"] for d in c.get("/definitions").json()["items"]]


def test_delete_removes_the_cronjob(gw):
    name = unique("gone")
    with gw.client("alice") as c:
        made = c.post("/definitions", json=definition(name, schedule="@hourly")).json()
        assert c.delete(f"/definitions/{name}").status_code == 200
        assert c.get(f"/definitions/{name}").status_code == 404
    r = gw.kubesim.http.get(f"{CRONJOBS}/{made['id']}")
    assert r.status_code == 404 or r.json()["metadata"].get("deletionTimestamp")


def test_a_taken_name_is_refused_naming_the_field(gw):
    name = unique("twice")
    with gw.client("alice") as c:
        assert c.post("/definitions", json=definition(name)).status_code == 201
        r = c.post("/definitions", json=definition(name))
        assert r.status_code == 409
        assert r.json()["problems"][0]["field"] == "name"


def test_the_dry_run_reports_policy_problems_by_field(gw):
    with gw.client("alice") as c:
        r = c.post("/jobs/validate", json=command_job("big", "pass", gpus=64))
        assert r.status_code == 200
        body = r.json()
        assert body["valid"] is False
        assert "gpus" in {p["field"] for p in body["problems"]}
        ok = c.post("/jobs/validate", json=command_job("fine", "pass")).json()
        assert ok == {"valid": True, "problems": []}


def test_the_definition_limit_refuses_one_too_many(gw):
    """bob's groups keep the default jobs.max_definitions (20)."""
    names = [unique("many") for _ in range(20)]
    with gw.client("bob") as c:
        try:
            for name in names:
                assert c.post("/definitions", json=definition(name)).status_code == 201
            r = c.post("/definitions", json=definition(unique("over")))
            assert r.status_code == 409
            assert r.json()["problems"][0]["code"] == "quota"
        finally:
            for name in names:
                c.delete(f"/definitions/{name}")
