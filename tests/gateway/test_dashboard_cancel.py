"""The dashboard's "cancel job" goes through the jobs gateway: the job stays in its owner's
history as Cancelled, with who cancelled it and when; only a service holding the admin scope
may name who acted (``on_behalf_of``), and a service's token may do nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from gateway_testlib import command_job

pytestmark = [pytest.mark.e2e, pytest.mark.ceph]

CULLER = "/services/culler/api/v1"


def _submit(gw, name: str) -> str:
    with gw.client("alice") as c:
        r = c.post("/jobs", json=command_job(name, "import time; time.sleep(600)"))
        assert r.status_code == 201, r.text
        return r.json()["id"]


def test_admin_cancel_from_the_dashboard_keeps_the_job_as_cancelled_by_the_admin(gw):
    job_id = _submit(gw, "dash-cancel")
    r = httpx.post(
        f"{gw.platform.hub_url}{CULLER}/admin/jobs/{job_id}/cancel",
        headers={"Authorization": f"token {gw.tokens['admin']}"},
        json={"reason": "the queue is needed for the deadline"},
        timeout=60,
    )
    assert r.status_code == 202, r.text
    assert r.json()["message"] == f"Cancelled alice's job {job_id}"
    job = gw.wait_state("alice", job_id, ("Cancelled",))
    assert job["cancelled_by"] == "admin"
    assert job["cancel_reason"] == "the queue is needed for the deadline"
    assert job["message"] == "cancelled by admin: the queue is needed for the deadline"
    assert job["cancelled_at"] and job["finished"] == job["cancelled_at"]


def test_a_cancel_from_the_dashboard_without_a_reason_is_refused(gw):
    r = httpx.post(
        f"{gw.platform.hub_url}{CULLER}/admin/jobs/j-none/cancel",
        headers={"Authorization": f"token {gw.tokens['admin']}"},
        json={},
        timeout=60,
    )
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["field"] == "reason"


def test_a_person_may_not_cancel_on_someone_elses_behalf(gw):
    job_id = _submit(gw, "behalf")
    with gw.client("admin") as c:
        r = c.delete(f"/jobs/{job_id}", params={"on_behalf_of": "bob"})
    assert r.status_code == 403, r.text
    assert r.json()["problems"][0]["field"] == "on_behalf_of"
    with gw.client("alice") as c:
        assert c.get(f"/jobs/{job_id}").json()["state"] != "Cancelled"
        assert c.delete(f"/jobs/{job_id}").status_code == 202


def _culler_token(gw) -> str:
    """The culler's own service token, from the process the hub started for this platform
    (found by its service URL: other platforms may run on the machine)."""
    config = (gw.platform.state_dir / "jupyterhub_config.py").read_text()
    port = re.search(r"service_definition\(\s*CULLER,\s*port=(\d+)", config)
    assert port, "the platform does not register the culler"
    url = f"http://127.0.0.1:{port.group(1)}".encode()
    for entry in Path("/proc").iterdir():
        try:
            if b"gpulab.hub.culler.service" not in (entry / "cmdline").read_bytes():
                continue
            env = dict(
                v.split(b"=", 1) for v in (entry / "environ").read_bytes().split(b"\0") if b"=" in v
            )
        except OSError:
            continue
        if env.get(b"JUPYTERHUB_SERVICE_URL") == url and env.get(b"JUPYTERHUB_API_TOKEN"):
            return env[b"JUPYTERHUB_API_TOKEN"].decode()
    raise AssertionError("the culler's process was not found")


def test_a_service_token_may_only_cancel(gw):
    token = {"Authorization": f"token {_culler_token(gw)}"}
    with httpx.Client(base_url=gw.base, headers=token, timeout=60) as culler:
        assert culler.get("/me").status_code == 403
        refused = culler.post("/jobs", json=command_job("as-culler", "print(1)"))
        assert refused.status_code == 403, refused.text
        job_id = _submit(gw, "unnamed")
        nameless = culler.delete(f"/jobs/{job_id}")
        assert nameless.status_code == 400
        assert nameless.json()["problems"][0]["field"] == "on_behalf_of"
