"""What the gateway decides around S3 outages, as pure functions: the upload Job of a job
whose upload is pending (the owner's home only, read-only, no GPU, runner in upload-only
mode), which finished jobs wait for an upload, and when a cancelled Job leaves the cluster."""

from __future__ import annotations

import datetime as dt

import kubernetes_validate
import pytest
from gpulab.hub.jobs.gateway.tombstones import expired
from gpulab.hub.jobs.gateway.uploads import awaiting_upload, upload_job_outcome
from gpulab.hub.jobs.manifest import (
    render_job,
    render_upload_job,
    upload_job_name,
    upload_secret_name,
)
from gpulab.hub.jobs.spec import parse_job_spec
from gpulab.hub.workload.labels import (
    CANCELLED_ANNOTATION,
    FAILED_REASON_ANNOTATION,
    GPUS_LABEL,
    JOB_ID_LABEL,
    NEVER_STARTED_ANNOTATION,
    UPLOAD_FOR_LABEL,
)
from gpulab.hub.workload.pod import HOME_VOLUME
from jobs_testlib import IMAGE

from gpulab.wire.runner import UPLOAD_MOUNT, UPLOAD_ONLY_COMMAND

JOB_ID = "train-abcdef"
NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def gpu_job(vision, policy):
    spec = parse_job_spec(
        {
            "name": "train",
            "image": IMAGE,
            "command": ["python", "t.py"],
            "gpus": 2,
            "datasets": ["coco"],
        }
    )
    job = render_job(
        spec,
        owner="alice",
        job_id=JOB_ID,
        entitlement=vision,
        policy=policy,
        image=IMAGE,
        namespace="gpulab",
        upload_secret_name=upload_secret_name(JOB_ID),
    )
    job["metadata"]["uid"] = "uid-1"
    return job


@pytest.fixture
def upload_job(gpu_job):
    return render_upload_job(
        gpu_job, secret_name=upload_job_name(JOB_ID), retries=6, deadline_seconds=86400
    )


def _container(job):
    [c] = job["spec"]["template"]["spec"]["containers"]
    return c


def test_upload_job_is_valid_kubernetes(upload_job):
    kubernetes_validate.validate(upload_job, "1.31.0", strict=True)


def test_upload_job_mounts_only_the_home_read_only(upload_job):
    pod = upload_job["spec"]["template"]["spec"]
    assert {v["name"] for v in pod["volumes"]} == {HOME_VOLUME, "upload"}
    mounts = {m["name"]: m for m in _container(upload_job)["volumeMounts"]}
    assert set(mounts) == {HOME_VOLUME, "upload"}
    assert mounts[HOME_VOLUME]["readOnly"] is True
    assert mounts["upload"]["mountPath"] == UPLOAD_MOUNT
    secret = next(v for v in pod["volumes"] if v["name"] == "upload")["secret"]
    assert secret["secretName"] == upload_job_name(JOB_ID)


def test_upload_job_holds_no_gpu(upload_job):
    pod = upload_job["spec"]["template"]["spec"]
    assert "nodeSelector" not in pod and "tolerations" not in pod
    resources = _container(upload_job)["resources"]
    assert not any("gpu" in k for part in resources.values() for k in part)
    assert GPUS_LABEL not in upload_job["spec"]["template"]["metadata"]["labels"]


def test_upload_job_runs_the_same_runner_upload_only_as_the_owner(gpu_job, upload_job):
    original, up = _container(gpu_job), _container(upload_job)
    assert up["command"] == UPLOAD_ONLY_COMMAND
    assert up["image"] == original["image"]
    assert up["env"] == original["env"]
    assert up["securityContext"] == original["securityContext"]
    assert (
        upload_job["spec"]["template"]["spec"]["securityContext"]
        == gpu_job["spec"]["template"]["spec"]["securityContext"]
    )


def test_upload_job_is_no_job_of_its_owner(upload_job):
    for labels in (
        upload_job["metadata"]["labels"],
        upload_job["spec"]["template"]["metadata"]["labels"],
    ):
        assert JOB_ID_LABEL not in labels
        assert labels[UPLOAD_FOR_LABEL] == JOB_ID


def _job(*, conditions=(), annotations=None, ttl=3600):
    return {
        "metadata": {"name": JOB_ID, "annotations": dict(annotations or {})},
        "spec": {"ttlSecondsAfterFinished": ttl},
        "status": {"conditions": [{"type": t, "status": "True"} for t in conditions]},
    }


def _cancelled(ago: dt.timedelta, ttl: int = 3600):
    at = (NOW - ago).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _job(annotations={CANCELLED_ANNOTATION: at}, ttl=ttl)


def test_cancelled_job_past_its_ttl_expires():
    assert expired([(JOB_ID, _cancelled(dt.timedelta(hours=2)))], NOW) == [JOB_ID]


def test_cancelled_job_within_its_ttl_is_kept():
    assert expired([(JOB_ID, _cancelled(dt.timedelta(minutes=5)))], NOW) == []


def test_job_not_cancelled_never_expires_here():
    assert expired([(JOB_ID, _job(conditions=["Complete"], ttl=0))], NOW) == []


def test_finished_job_without_live_pod_awaits_its_upload():
    job = _job(conditions=["Complete"])
    done_pod = {"status": {"phase": "Succeeded"}}
    assert awaiting_upload([(JOB_ID, job)], lambda _: [done_pod], {}) == [JOB_ID]


def test_job_with_a_live_pod_does_not_await_an_upload_yet():
    job = _cancelled(dt.timedelta(seconds=1))
    terminating = {"status": {"phase": "Running"}}
    assert awaiting_upload([(JOB_ID, job)], lambda _: [terminating], {}) == []


def test_job_whose_upload_is_known_over_awaits_nothing():
    job = _job(conditions=["Failed"])
    assert awaiting_upload([(JOB_ID, job)], lambda _: [], {JOB_ID: "ok"}) == []
    assert awaiting_upload([(JOB_ID, job)], lambda _: [], {JOB_ID: "failed"}) == []


def test_job_failed_by_the_gateway_awaits_no_upload():
    job = _job(annotations={FAILED_REASON_ANNOTATION: "half-made"})
    assert awaiting_upload([(JOB_ID, job)], lambda _: [], {}) == []


@pytest.mark.parametrize(
    ("conditions", "outcome"),
    [([], "running"), (["Complete"], "done"), (["Failed"], "failed")],
)
def test_upload_job_outcome(conditions, outcome):
    assert upload_job_outcome(_job(conditions=conditions)) == outcome


def test_job_cancelled_before_it_started_awaits_no_upload():
    job = _cancelled(dt.timedelta(seconds=1))
    job["metadata"]["annotations"][NEVER_STARTED_ANNOTATION] = "true"
    assert awaiting_upload([(JOB_ID, job)], lambda _: [], {}) == []


def test_upload_job_has_a_secret_of_its_own(upload_job):
    """Not the job's own upload Secret: that one may have expired with the job's deadline."""
    assert upload_job_name(JOB_ID) != upload_secret_name(JOB_ID)
    [volume] = [v for v in upload_job["spec"]["template"]["spec"]["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == upload_job_name(JOB_ID)
