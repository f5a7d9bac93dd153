"""The Kubernetes API writes one submit makes, counted from kubesim's audit log (the gateway's
User-Agent) on the session platform: a CPU job in a group without CPU or memory quota writes its
Job and its upload Secret only; a GPU job also its quota group's ledger; the owner's home claim
is created by the first submit when it is missing (once, however many submits come at once),
and never asked for again once the gateway's watch holds it."""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_testlib import NAMESPACE, POLICY, command_job
from gpulab.hub.policy import load_policy
from gpulab.hub.workload.pod import home_claim, home_of

pytestmark = [pytest.mark.e2e, pytest.mark.ceph]

WRITES = frozenset({"create", "update", "patch", "delete", "deletecollection"})
GATEWAY_AGENT = "gpulab-jobs-gateway"


class GatewayWrites:
    """The gateway's writes in the audit log from the moment it is made."""

    def __init__(self, audit: Path) -> None:
        self.audit = audit
        self.start = len(audit.read_text().splitlines())

    def __call__(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for line in self.audit.read_text().splitlines()[self.start :]:
            rec = json.loads(line)
            if GATEWAY_AGENT in rec.get("userAgent", "") and rec["verb"] in WRITES:
                counts[f"{rec['verb']} {rec['resource']}"] += 1
        return counts


def new_user(gw, name: str, group: str) -> httpx.Client:
    """A hub user in ``group`` who never started a server, with a client of their own."""
    gw.platform.api("POST", f"/hub/api/users/{name}", {})
    gw.platform.api("POST", f"/hub/api/groups/{group}/users", {"users": [name]})
    token = gw.platform.user_token(name)
    return httpx.Client(base_url=gw.base, headers={"Authorization": f"token {token}"}, timeout=60)


def submit(client: httpx.Client, name: str, **extra: Any) -> dict[str, Any]:
    r = client.post("/jobs", json=command_job(name, "pass", **extra))
    assert r.status_code == 201, r.text
    return r.json()


def claim_exists(gw, user: str) -> bool:
    name = home_of(load_policy(POLICY), user).name
    r = gw.kubesim.http.get(f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims/{name}")
    return r.status_code == 200


def audit(gw) -> Path:
    return gw.platform.state_dir / "kubesim-audit.jsonl"


def test_the_first_submits_of_a_user_without_a_home_create_it_once(gw):
    with new_user(gw, "writes-first", "vision") as client:
        writes = GatewayWrites(audit(gw))
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda i: submit(client, f"first{i}"), range(3)))
        assert writes()["create persistentvolumeclaims"] == 1
    assert claim_exists(gw, "writes-first")


def test_a_submit_whose_home_exists_does_not_ask_for_it(gw):
    gw.kubesim.create(
        f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims",
        home_claim(load_policy(POLICY), "writes-has", NAMESPACE),
    )
    with new_user(gw, "writes-has", "vision") as client:
        # Until the gateway's watch delivered the claim a submit may still ask (and take the
        # 409 as "it exists"); after that, never. Bounded, not timed.
        deadline = time.monotonic() + 30
        for i in range(20):
            writes = GatewayWrites(audit(gw))
            submit(client, f"has{i}")
            if not writes()["create persistentvolumeclaims"]:
                return
            assert time.monotonic() < deadline, "the gateway kept asking for an existing claim"
        raise AssertionError("every submit asked for the existing home claim")


def test_a_cpu_job_submit_writes_its_job_and_its_secret_only(gw):
    with new_user(gw, "writes-cpu", "vision") as client:
        submit(client, "warmup")  # makes the home claim
        writes = GatewayWrites(audit(gw))
        submit(client, "cpu")
        assert writes() == Counter({"create jobs": 1, "create secrets": 1})


def test_a_gpu_job_submit_also_writes_its_groups_quota_ledger(gw):
    with new_user(gw, "writes-gpu", "vision") as client:
        submit(client, "warmup")  # makes the home claim
        writes = GatewayWrites(audit(gw))
        submit(client, "gpu", gpus=1)
        got = writes()
        # the ledger is created by the group's first GPU start or submit, updated after
        assert got["update configmaps"] + got["create configmaps"] == 1, got
        assert got["create jobs"] == got["create secrets"] == 1, got
        assert sum(got.values()) == 3, got
