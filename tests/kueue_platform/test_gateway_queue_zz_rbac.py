"""RBAC with Kueue: every API call the gateway made on the Kueue platform (kubesim's audit log,
after the other tests of this folder submitted, queued, cancelled and saw preemptions) is one
its rights allow, and each is granted by helm-values/manifests/rbac-gateway.yaml (its Roles in
the namespace, its ClusterRole for the users' ClusterQueues)."""

from __future__ import annotations

from gpulab.kube_identities import GATEWAY
from tests.gateway.gateway_testlib import ROOT, command_job
from tests.ship.rbac import load_audit, load_role_rules, not_allowed, rules_cover

ROLE_FILE = ROOT / "helm-values" / "manifests" / "rbac-gateway.yaml"


def test_gateway_kueue_calls_are_granted_by_its_role_and_cluster_role(kgw):
    with kgw.client("alice") as c:  # at least one queued submit (the user's queues made)
        r = c.post("/jobs", json=command_job("rbac", "pass", gpus=1))
        assert r.status_code == 201, r.text
        c.delete(f"/jobs/{r.json()['id']}")
    calls = load_audit(
        kgw.platform.state_dir / "kubesim-audit.jsonl", user_agent="gpulab-jobs-gateway"
    )
    kueue_calls = [c for c in calls if c.api_group == "kueue.x-k8s.io"]
    assert {c.resource for c in kueue_calls} >= {"workloads", "localqueues", "clusterqueues"}
    with kgw.platform.kube_client(GATEWAY) as kube:
        assert not not_allowed(kube, calls)
    role = load_role_rules(ROLE_FILE, "gpulab-jobs-gateway")
    role += load_role_rules(ROLE_FILE, "gpulab-jobs-gateway-localqueues")
    cluster_role = load_role_rules(ROLE_FILE, "gpulab-jobs-gateway-kueue")
    namespaced = [c for c in calls if c.namespace]
    missing, _ = rules_cover(role, namespaced, namespace="default")
    assert not missing, f"the Role lacks {missing}"
    missing, _ = rules_cover(cluster_role, [c for c in calls if not c.namespace])
    assert not missing, f"the ClusterRole lacks {missing}"
