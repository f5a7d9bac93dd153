"""Which notifications a job owes: one per transition, none once recorded; the signature a
receiver checks."""

from __future__ import annotations

import hashlib
import hmac
import json

from gpulab.hub.jobs.gateway.notify_events import due_notifications, payload, sign
from gpulab.hub.workload.labels import GPU_IDLE_ANNOTATION
from notify_jobs import job


def test_a_finished_job_owes_one_succeeded_notification() -> None:
    assert [d.key for d in due_notifications(job("j1", complete=True), [])] == ["succeeded"]


def test_a_recorded_notification_is_not_owed_again() -> None:
    done = job("j1", complete=True, notified={"succeeded": {"status": "delivered"}})
    assert due_notifications(done, []) == []


def test_each_preemption_is_owed_once() -> None:
    twice = job("j1", preemptions=2, notified={"preempted:1": {"status": "delivered"}})
    assert [d.key for d in due_notifications(twice, [])] == ["preempted:2"]


def test_a_waiting_job_owes_nothing() -> None:
    assert due_notifications(job("j1"), []) == []


def test_the_payload_names_the_job_its_state_and_links() -> None:
    body = payload(job("j1", complete=True), [], "succeeded", "https://gw.example.org/svc/")
    assert (body["job_id"], body["state"], body["event"]) == ("j1", "Succeeded", "succeeded")
    assert body["links"]["job"] == "https://gw.example.org/svc/api/v1/jobs/j1"


def test_the_signature_verifies_as_the_docs_show() -> None:
    body = json.dumps({"job_id": "j1"}).encode()
    header = sign(body, "s3cret")
    # docs/jobs.md, "Verifying a webhook"
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(header, expected)


def test_each_idle_gpu_episode_is_owed_once() -> None:
    idle = json.dumps(
        {"since": "2099-01-01T00:00:00Z", "reason": "GPU idle (< 10 %) for 1h", "action": "kill"}
    )
    owes = job("j1")
    owes["metadata"]["annotations"][GPU_IDLE_ANNOTATION] = idle
    (due,) = due_notifications(owes, [])
    body = payload(owes, [], due.event, None)
    assert (due.key, due.event) == ("gpu_idle:2099-01-01T00:00:00Z", "gpu_idle")
    assert "being stopped" in body["message"]
