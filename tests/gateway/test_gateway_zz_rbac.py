"""RBAC: the API calls the gateway really made in this session (kubesim's audit log, filtered
by the gateway's User-Agent) against helm-values/manifests/rbac-gateway.yaml, with
tests/ship/rbac.py's ``rules_cover``. Runs last in this directory (file name), after the
other gateway tests made every kind of call (submit, idempotent retry, cancel, logs)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gpulab.kube_identities import GATEWAY  # noqa: E402
from tests.ship.rbac import (  # noqa: E402
    Permission,
    load_audit,
    load_role_rules,
    not_allowed,
    rules_cover,
)

pytestmark = [pytest.mark.e2e, pytest.mark.ceph]

ROLE_FILE = ROOT / "helm-values" / "manifests" / "rbac-gateway.yaml"
# Nothing may be missing from the Role.
NEEDED_BEYOND_ROLE: set[Permission] = set()
# Granted, used only on a path this session may not take: GET of a Job (after a 409 on
# create, or checking an upload Job); creating a quota group's ledger (the spawner may have
# made it first); deleting a Job (a half-made one whose repair the faults may cut short, or a
# cancelled one whose TTL has passed: cancel itself suspends).
RARE_PATHS = {
    Permission("batch", "jobs", "get"),
    Permission("", "configmaps", "create"),
    Permission("batch", "jobs", "delete"),
    # a multi-node job's headless Service: its tests (test_multinode_e2e) may run after this
    Permission("", "services", "create"),
    # A saved definition's scheduled runs (a minute-away schedule in test_definitions_e2e.py,
    # maybe on another worker): read the CronJob, write the run's credential into the
    # definition's Secret (update from the second run on), lift the pod's gate.
    Permission("batch", "cronjobs", "get"),
    Permission("", "secrets", "update"),
    Permission("", "pods", "patch"),
}
# Granted for clusters that run Kueue, which this platform does not (the Kueue platform's own
# check: tests/kueue_platform/test_gateway_queue_zz_rbac.py).
KUEUE_ONLY = {
    Permission("kueue.x-k8s.io", "workloads", "list"),
    Permission("kueue.x-k8s.io", "workloads", "watch"),
    *(
        Permission("kueue.x-k8s.io", "localqueues", v)
        for v in ("get", "create", "update", "delete")
    ),
}
# Nothing granted may go unused (but for RARE_PATHS and KUEUE_ONLY).
NOT_NEEDED_IN_ROLE: set[Permission] = set()


def test_gateway_calls_match_its_role(gw):
    from gateway_testlib import command_job

    # make sure every kind of call happened at least once in this session
    with gw.client("alice") as c:
        job_id = c.post(
            "/jobs",
            json=command_job("rbac", "import time; time.sleep(30)"),
            headers={"Idempotency-Key": "rbac-check"},
        ).json()["id"]
        c.post(
            "/jobs",
            json=command_job("rbac", "import time; time.sleep(30)"),
            headers={"Idempotency-Key": "rbac-check"},
        )
        gw.wait_state("alice", job_id, ("Running",))
        c.get(f"/jobs/{job_id}/logs")
        c.delete(f"/jobs/{job_id}")
        # A GPU job goes through the group's quota ledger (created or updated on submit,
        # updated again when the cancel releases its reservation); CPU jobs never do.
        gpu_job = c.post(
            "/jobs",
            json=command_job("rbac-gpu", "pass", gpus=1),
            headers={"Idempotency-Key": "rbac-check-gpu"},
        )
        assert gpu_job.status_code == 201, gpu_job.text
        c.delete(f"/jobs/{gpu_job.json()['id']}")
        # a saved definition: create, list, pause, delete
        made = c.post(
            "/definitions",
            json={
                "name": "rbac-def",
                "spec": command_job("rbac-def", "pass"),
                "schedule": "@daily",
            },
        )
        assert made.status_code in (201, 409), made.text
        c.get("/definitions")
        c.post("/definitions/rbac-def/pause")
        c.delete("/definitions/rbac-def")

    calls = load_audit(
        gw.platform.state_dir / "kubesim-audit.jsonl", user_agent="gpulab-jobs-gateway"
    )
    assert calls, "no gateway calls recorded"
    # kubesim serves the gateway with its own token, bound only by rbac-gateway.yaml: every
    # call it made is one its RBAC allows (some were refused on purpose, by a quota).
    with gw.platform.kube_client(GATEWAY) as kube:
        refused = not_allowed(kube, calls)
    assert not refused, f"kubesim's RBAC does not allow the gateway's {refused}"
    rules = load_role_rules(ROLE_FILE, "gpulab-jobs-gateway")
    missing, extra = rules_cover(rules, calls, namespace="default")
    used = sorted({c.permission for c in calls}, key=str)
    print("gateway permissions used:", ", ".join(map(str, used)))
    print("missing from the Role:", missing, "granted but unused:", extra)
    unexpected_missing = [p for p in missing if p not in NEEDED_BEYOND_ROLE]
    assert not unexpected_missing, f"the Role lacks {unexpected_missing}"
    # cluster-wide or other-namespace calls would show up as missing above
    assert all(c.namespace == "default" for c in calls)
    unexpected_extra = [p for p in extra if p not in RARE_PATHS | KUEUE_ONLY | NOT_NEEDED_IN_ROLE]
    assert not unexpected_extra, f"the Role grants more than is used: {unexpected_extra}"
