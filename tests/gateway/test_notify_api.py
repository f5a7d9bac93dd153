"""``/api/v1/notify`` on the real platform: each user's own settings, mistakes answered 4xx
naming the field, the webhook secret answered once."""

from __future__ import annotations

import json

import pytest
from gateway_testlib import NAMESPACE, GatewayEnv, command_job
from gpulab.hub.workload.labels import GPU_IDLE_ANNOTATION


def test_a_webhook_url_inside_the_cluster_is_refused_naming_the_field(gw: GatewayEnv) -> None:
    with gw.client("alice") as c:
        r = c.put("/notify", json={"webhook_url": "https://169.254.169.254/latest/meta-data"})
    assert r.status_code == 422
    assert [p["field"] for p in r.json()["problems"]] == ["webhook_url"]


def test_email_is_refused_where_the_admin_set_up_no_smtp(gw: GatewayEnv) -> None:
    with gw.client("alice") as c:
        r = c.put("/notify", json={"email": "alice@example.org"})
    assert r.status_code == 422
    assert [p["field"] for p in r.json()["problems"]] == ["email"]


def test_the_webhook_secret_is_answered_once(gw: GatewayEnv) -> None:
    with gw.client("carol") as c:
        saved = c.put("/notify", json={"webhook_url": "https://hooks.example.org/carol"})
        again = c.get("/notify")
    assert saved.status_code == 200 and len(saved.json()["webhook_secret"]) >= 32
    assert again.json()["webhook_secret_set"] is True
    assert "webhook_secret" not in again.json()


def test_a_users_settings_are_their_own(gw: GatewayEnv) -> None:
    with gw.client("alice") as a, gw.client("bob") as b:
        assert a.put("/notify", json={"webhook_url": "https://hooks.example.org/a"}).is_success
        theirs = b.get("/notify").json()
    assert theirs["webhook_url"] is None


def test_rotating_the_secret_answers_a_new_one(gw: GatewayEnv) -> None:
    with gw.client("bob") as c:
        first = c.put("/notify", json={"webhook_url": "https://hooks.example.org/bob"})
        rotated = c.post("/notify/secret")
    assert rotated.status_code == 200
    assert rotated.json()["webhook_secret"] != first.json()["webhook_secret"]


@pytest.fixture(scope="module")
def bobs_job(gw: GatewayEnv) -> str:
    with gw.client("bob") as c:
        r = c.post("/jobs", json=command_job("idle-report", "print('hi')"))
    assert r.status_code == 201, r.text
    return r.json()["id"]


IDLE = {
    "since": "2026-12-03T12:00:00+00:00",
    "reason": "GPU idle (< 10%) for 1h",
    "action": "report",
}


def test_the_culler_s_idle_gpu_finding_is_recorded_on_the_job(
    gw: GatewayEnv, bobs_job: str
) -> None:
    with gw.client("admin") as c:
        r = c.post(f"/jobs/{bobs_job}/gpu-idle", json=IDLE)
    assert r.status_code == 200, r.text
    job = gw.kubesim.get(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/{bobs_job}")
    assert json.loads(job["metadata"]["annotations"][GPU_IDLE_ANNOTATION]) == IDLE


def test_only_an_admin_reports_idle_gpus(gw: GatewayEnv, bobs_job: str) -> None:
    with gw.client("bob") as c:
        assert c.post(f"/jobs/{bobs_job}/gpu-idle", json=IDLE).status_code == 403


def test_a_bad_idle_gpu_report_names_the_field(gw: GatewayEnv, bobs_job: str) -> None:
    with gw.client("admin") as c:
        r = c.post(f"/jobs/{bobs_job}/gpu-idle", json={**IDLE, "action": "explode"})
    assert r.status_code == 400
    assert [p["field"] for p in r.json()["problems"]] == ["action"]
