"""Isolation: user B cannot see, stream, cancel, resubmit or download user A's job (404 on
every endpoint, as for a job that does not exist), cannot list it, cannot forge identity in
the body, cannot use A's upload credential outside A's prefix; the job pod holds no S3 key
and no Kubernetes token. Admins see everything."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from gateway_testlib import NAMESPACE, command_job

pytestmark = [pytest.mark.e2e, pytest.mark.ceph]

SCRIPT = (
    "import os, pathlib\n"
    "out = pathlib.Path(os.environ['GPULAB_OUTPUT_DIR']); out.mkdir(parents=True, exist_ok=True)\n"
    "(out / 'secret.txt').write_text('alice only')\n"
    "print('alice log')\n"
)


@pytest.fixture(scope="module")
def alice_job(gw):
    with gw.client("alice") as c:
        r = c.post("/jobs", json=command_job("private", SCRIPT))
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
    gw.wait_state("alice", job_id, ("Succeeded",))
    return job_id


def _answers(client: httpx.Client, job_id: str) -> list[tuple[str, int, str]]:
    """Every per-job endpoint's answer as (request, status, body), with the id itself blanked
    out so that answers about two different ids can be compared."""
    answers = [
        client.get(f"/jobs/{job_id}"),
        client.get(f"/jobs/{job_id}/logs"),
        client.get(f"/jobs/{job_id}/logs", params={"follow": "1"}),
        client.get(f"/jobs/{job_id}/outputs"),
        client.get(f"/jobs/{job_id}/outputs/outputs/secret.txt", follow_redirects=False),
        client.get(f"/jobs/{job_id}/outputs/outputs/secret.txt", params={"redirect": "0"}),
        client.delete(f"/jobs/{job_id}"),
        client.post(f"/jobs/{job_id}/resubmit"),
    ]
    return [
        (
            f"{r.request.method} {r.request.url}".replace(job_id, "<id>"),
            r.status_code,
            r.text.replace(job_id, "<id>"),
        )
        for r in answers
    ]


def test_other_user_gets_404_everywhere(gw, alice_job):
    missing = alice_job[:-6] + "zzzzzz"  # same shape, no such job
    assert missing != alice_job
    with gw.client("bob") as b:
        not_yours = _answers(b, alice_job)
        not_there = _answers(b, missing)
        for request, status, body in not_yours:
            assert status == 404, (request, body)
        # "not yours" answers exactly like "not there": same status, same body
        for yours, there in zip(not_yours, not_there, strict=True):
            assert yours == there
        ids = [j["id"] for j in b.get("/jobs").json()["items"]]
        assert alice_job not in ids
        # filters narrow bob's own jobs; they never reach anyone else's
        assert b.get("/jobs", params={"user": "alice"}).json()["items"] == []
        by_group = b.get("/jobs", params={"group": "vision", "limit": "500"}).json()["items"]
        assert {j["owner"] for j in by_group} <= {"bob"}
    # alice's job is untouched by bob's DELETE
    with gw.client("alice") as a:
        assert a.get(f"/jobs/{alice_job}").json()["state"] == "Succeeded"


def test_admin_sees_all_with_filters(gw, alice_job):
    with gw.client("admin") as adm:
        assert adm.get(f"/jobs/{alice_job}").status_code == 200
        mine = adm.get("/jobs", params={"user": "alice", "limit": "500"}).json()["items"]
        assert alice_job in [j["id"] for j in mine] and {j["owner"] for j in mine} == {"alice"}
        by_group = adm.get("/jobs", params={"group": "vision", "limit": "500"}).json()["items"]
        assert alice_job in [j["id"] for j in by_group]
        assert adm.get(f"/jobs/{alice_job}/outputs").status_code == 200
        # pagination walks everything once
        seen, token = [], None
        while True:
            params = {"limit": "2"} | ({"continue": token} if token else {})
            page = adm.get("/jobs", params=params).json()
            seen += [j["id"] for j in page["items"]]
            token = page["continue"]
            if not token:
                break
        assert len(seen) == len(set(seen)) and alice_job in seen


def test_forged_identity_in_body_is_refused(gw):
    with gw.client("bob") as b:
        for field in ("owner", "user", "group", "admin"):
            body = command_job("forged", "print(1)") | {field: "alice"}
            r = b.post("/jobs", json=body)
            assert r.status_code == 422, r.text
            assert any(p["field"] == field for p in r.json()["problems"])
        # identity headers are not trusted either
        r = b.post(
            "/jobs",
            json=command_job("hdr", "print(1)", image="harbor.local/shared/scipy:2024.10"),
            headers={"X-Forwarded-User": "alice", "X-Remote-User": "alice"},
        )
        if r.status_code == 201:
            assert r.json()["owner"] == "bob"
            b.delete(f"/jobs/{r.json()['id']}")


def test_upload_credential_is_confined_and_pod_has_no_secrets(gw, alice_job):
    # read A's upload credential from the Secret, as a cluster admin could
    secret = gw.kubesim.get(f"/api/v1/namespaces/{NAMESPACE}/secrets/{alice_job}-upload")
    cred = json.loads(base64.b64decode(secret["data"]["credential.json"]))
    assert cred["prefix"] == f"alice/{alice_job}/"
    assert secret["metadata"]["ownerReferences"][0]["name"] == alice_job
    for key in (f"bob/{alice_job}/evil.txt", "alice/other-job-aaaaaa/evil.txt", "evil.txt"):
        r = httpx.post(
            cred["url"],
            data={**cred["fields"], "key": key},
            files={"file": ("evil.txt", b"evil")},
        )
        assert r.status_code == 403, (key, r.status_code, r.text[:300])
    ok = httpx.post(
        cred["url"],
        data={**cred["fields"], "key": f"alice/{alice_job}/extra.txt"},
        files={"file": ("x", b"inside")},
    )
    assert ok.status_code in (200, 201, 204), ok.text[:300]

    job = gw.kubesim.get(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/{alice_job}")
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["automountServiceAccountToken"] is False
    s3 = gw.platform.s3
    for container in pod_spec["containers"]:
        env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
        values = " ".join(env.values())
        assert s3.access_key not in values and s3.secret_key not in values
        assert not any(k.startswith(("AWS_", "KUBERNETES_")) for k in env)
        assert "GPULAB_S3_SECRET_KEY" not in env and "GPULAB_S3_ACCESS_KEY" not in env
    text = json.dumps(job)
    assert s3.secret_key not in text and s3.access_key not in text
    # the gateway's answers never carry a key either
    with gw.client("alice") as a:
        for path in (f"/jobs/{alice_job}", f"/jobs/{alice_job}/outputs", "/me"):
            body = a.get(path).text
            assert s3.secret_key not in body and s3.access_key not in body
