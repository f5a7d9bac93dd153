"""The whole path through the real proxy: submit -> kubesim's Job controller runs the runner ->
Succeeded; logs (followed, then from S3 after the pod is gone); the output in S3 under
``<user>/<job-id>/``, downloaded through the presigned URL; idempotent submit; cancel;
resubmit; /me and /openapi.json."""

from __future__ import annotations

import uuid

import httpx
import pytest
import yaml
from gateway_testlib import NAMESPACE, command_job

pytestmark = [pytest.mark.e2e, pytest.mark.ceph]

WRITE_OUTPUT = (
    "import os, pathlib, sys\n"
    "print('hello from the job', flush=True)\n"
    "print('to stderr', file=sys.stderr, flush=True)\n"
    "out = pathlib.Path(os.environ['GPULAB_OUTPUT_DIR'])\n"
    "out.mkdir(parents=True, exist_ok=True)\n"
    "(out / 'model.txt').write_text('weights 42')\n"
    "print('done', flush=True)\n"
)


def test_submit_run_logs_outputs_download(gw):
    with gw.client("alice") as c:
        r = c.post("/jobs", json=command_job("train", WRITE_OUTPUT))
        assert r.status_code == 201, r.text
        job = r.json()
        assert job["owner"] == "alice" and job["group"] == "vision"
        assert job["state"] in ("Pending", "Running")
        assert r.headers["Location"].endswith(f"/jobs/{job['id']}")
        job_id = job["id"]

        # follow the log from the pod while it runs: the stream ends when the job does
        with c.stream("GET", f"/jobs/{job_id}/logs", params={"follow": "1"}) as s:
            assert s.status_code == 200
            followed = "".join(s.iter_text())
        assert "hello from the job" in followed and "done" in followed

        done = gw.wait_state("alice", job_id, ("Succeeded", "Failed"))
        assert done["state"] == "Succeeded", done
        assert done["exit_code"] == 0
        assert done["started"] and done["finished"]

        # the output file lands in S3 under <user>/<job-id>/
        outputs = c.get(f"/jobs/{job_id}/outputs").json()
        paths = {item["path"] for item in outputs["items"]}
        assert "outputs/model.txt" in paths, outputs
        assert "log.txt" in paths
        assert outputs["upload"] == "ok"
        s3 = gw.platform.s3
        import boto3
        from gpulab.hub.jobs.storage import s3_client_config

        admin_s3 = boto3.client(
            "s3",
            endpoint_url=s3.endpoint,
            aws_access_key_id=s3.access_key,
            aws_secret_access_key=s3.secret_key,
            region_name="default",
            config=s3_client_config(),
        )
        keys = [
            o["Key"]
            for o in admin_s3.list_objects_v2(Bucket="gpulab-outputs", Prefix=f"alice/{job_id}/")[
                "Contents"
            ]
        ]
        assert f"alice/{job_id}/outputs/model.txt" in keys

        # download through the presigned URL: 307 redirect, and ?redirect=0 JSON
        r = c.get(f"/jobs/{job_id}/outputs/outputs/model.txt", follow_redirects=False)
        assert r.status_code == 307
        location = r.headers["Location"]
        assert "X-Amz-Signature" in location
        assert httpx.get(location).content == b"weights 42"
        info = c.get(f"/jobs/{job_id}/outputs/outputs/model.txt", params={"redirect": "0"}).json()
        assert info["expires_in"] > 0 and httpx.get(info["url"]).content == b"weights 42"
        assert c.get(f"/jobs/{job_id}/outputs/outputs/nothing.bin").status_code == 404
        assert c.get(f"/jobs/{job_id}/outputs/../bob/x").status_code in (400, 404)

        # after the pod is gone, the log is still readable (from S3)
        for pod in gw.kubesim.pods(f"gpulab.io/job-id={job_id}"):
            gw.kubesim.http.delete(
                f"/api/v1/namespaces/{NAMESPACE}/pods/{pod['metadata']['name']}",
                params={"gracePeriodSeconds": "0"},
            ).raise_for_status()
        _wait_no_pods(gw, job_id)
        text = c.get(f"/jobs/{job_id}/logs").text
        assert "hello from the job" in text and "done" in text
        tail = c.get(f"/jobs/{job_id}/logs", params={"tail": "1"}).text
        assert tail.strip().splitlines()[-1:] == text.strip().splitlines()[-1:]

        # and listed, newest first
        listed = c.get("/jobs").json()["items"]
        assert job_id in [j["id"] for j in listed]


def _wait_no_pods(gw, job_id: str) -> None:
    import time

    for _ in range(200):
        if not gw.kubesim.pods(f"gpulab.io/job-id={job_id}"):
            return
        time.sleep(0.1)
    raise AssertionError("pods not deleted")


def test_yaml_submit_and_idempotency(gw):
    key = str(uuid.uuid4())
    spec = yaml.safe_dump(command_job("idem", "print('once')"))
    with gw.client("alice") as c:
        headers = {"Content-Type": "application/yaml", "Idempotency-Key": key}
        first = c.post("/jobs", content=spec, headers=headers)
        assert first.status_code == 201, first.text
        again = c.post("/jobs", content=spec, headers=headers)
        assert again.status_code == 200, again.text
        assert again.json()["id"] == first.json()["id"]
        assert first.json()["idempotency_key"] == key
        jobs = gw.kubesim.jobs(f"gpulab.io/job-id={first.json()['id']}")
        assert len(jobs) == 1
        # the same key from another user is another job
        with gw.client("bob") as b:
            other = b.post(
                "/jobs", json=command_job("idem", "print(1)"), headers={"Idempotency-Key": key}
            )
            assert other.status_code in (201, 422), other.text  # bob's groups may refuse the image
            if other.status_code == 201:
                assert other.json()["id"] != first.json()["id"]
        bad = c.post("/jobs", content=spec, headers={**headers, "Idempotency-Key": "has space"})
        assert bad.status_code == 400


def test_cancel_and_resubmit(gw):
    with gw.client("alice") as c:
        r = c.post(
            "/jobs",
            json=command_job("sleepy", "import time; print('start', flush=True); time.sleep(600)"),
        )
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        gw.wait_state("alice", job_id, ("Running",))
        r = c.delete(f"/jobs/{job_id}")
        assert r.status_code == 202, r.text
        assert r.json()["state"] == "Cancelled"
        assert c.get(f"/jobs/{job_id}").json()["state"] == "Cancelled"
        _wait_no_pods(gw, job_id)
        # still listed as Cancelled once Kubernetes removed it
        after = c.get(f"/jobs/{job_id}")
        assert after.status_code == 200 and after.json()["state"] == "Cancelled"
        states = {
            j["id"]: j["state"]
            for j in c.get("/jobs", params={"state": "Cancelled"}).json()["items"]
        }
        assert states.get(job_id) == "Cancelled"
        assert c.delete(f"/jobs/{job_id}").status_code == 202  # idempotent

        r = c.post(f"/jobs/{job_id}/resubmit")
        assert r.status_code == 201, r.text
        again = r.json()
        assert again["id"] != job_id and again["spec"] == after.json()["spec"]
        assert c.delete(f"/jobs/{again['id']}").status_code == 202


def test_me_openapi_and_errors(gw):
    with gw.client("alice") as c:
        me = c.get("/me").json()
        assert me["name"] == "alice" and me["groups"] == ["vision"] and me["admin"] is False
        assert me["quota"]["group"] == "vision" and me["quota"]["gpus_user_limit"] == 4
        assert me["policy"]["per_job"] == 4
        spec = c.get("/openapi.json").json()
        assert spec["openapi"].startswith("3.1") and "/jobs" in spec["paths"]
        r = c.post("/jobs", json={"name": "x", "command": ["true"], "owner": "bob"})
        assert r.status_code == 422
        body = r.json()
        assert body["error"] and any(p["field"] == "owner" for p in body["problems"])
        assert c.post("/jobs", content=b"x" * (65 * 1024)).status_code == 413
        assert c.get("/jobs", params={"limit": "0"}).status_code == 400
        assert c.get("/jobs", params={"state": "Bogus"}).status_code == 400
        assert c.get("/jobs", params={"continue": "!!"}).status_code == 400
        r = c.post("/jobs", json=command_job("toobig", "1", gpus=64))
        assert r.status_code == 422 and r.json()["problems"][0]["field"] == "gpus"
    with gw.client(None) as anon:
        assert anon.get("/jobs").status_code in (401, 403)
    with httpx.Client(base_url=gw.base, headers={"Authorization": "token nope"}) as bad:
        assert bad.get("/jobs").status_code in (401, 403)
