"""The hub's and the gateway's Roles (helm-values/manifests/rbac-*.yaml) grant every Kueue
call they make: checked against the calls kubesim audited."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpulab.hub.kube import KubeClient
from gpulab.hub.kueue.sync import ensure_user_queues, sync_policy
from gpulab.kubesim.main import KubeSim

from tests.kueue.conftest import USER_AGENT
from tests.kueue.kueue_policies import policy
from tests.ship.rbac import ApiCall, load_role_rules, rules_cover

MANIFESTS = Path(__file__).resolve().parents[2] / "helm-values" / "manifests"
NS = "default"


def _kueue_calls(sim: KubeSim) -> list[ApiCall]:
    return [
        ApiCall(r.verb, r.apiGroup, r.resource, r.subresource, r.namespace, r.name)
        for r in sim.audit.recent
        if r.userAgent.startswith(USER_AGENT) and r.apiGroup == "kueue.x-k8s.io" and r.resource
    ]


def _missing(calls: list[ApiCall], file: str, cluster_role: str, role: str) -> list[str]:
    cluster = [c for c in calls if not c.namespace]
    namespaced = [c for c in calls if c.namespace]
    missing = rules_cover(load_role_rules(MANIFESTS / file, cluster_role), cluster)[0]
    missing += rules_cover(load_role_rules(MANIFESTS / file, role), namespaced, namespace=NS)[0]
    return [str(p) for p in missing]


@pytest.fixture
async def users_moved(kube: KubeClient) -> None:
    """A user's queues made, changed by the policy, and moved to another group."""
    await ensure_user_queues(kube, policy(), "alice", "vision", namespace=NS)
    await ensure_user_queues(
        kube, policy(groups__vision__gpu__quota_user=6), "alice", "vision", namespace=NS
    )
    await ensure_user_queues(kube, policy(), "alice", "nlp", namespace=NS)


async def test_the_gateway_may_make_users_queues(users_moved: None, kueue_sim: KubeSim) -> None:
    calls = _kueue_calls(kueue_sim)
    assert {c.verb for c in calls} >= {"get", "create", "update", "list", "delete"}
    assert (
        _missing(
            calls,
            "rbac-gateway.yaml",
            "gpulab-jobs-gateway-kueue",
            "gpulab-jobs-gateway-localqueues",
        )
        == []
    )


async def test_the_hub_may_keep_every_kueue_object(
    users_moved: None, kube: KubeClient, kueue_sim: KubeSim
) -> None:
    await sync_policy(kube, policy(), NS)
    await sync_policy(kube, policy(groups__nlp__gpu__quota_group=6), NS)
    await sync_policy(kube, policy(groups__nlp=None), NS)
    calls = _kueue_calls(kueue_sim)
    assert {c.resource for c in calls} == {
        "resourceflavors",
        "cohorts",
        "clusterqueues",
        "workloadpriorityclasses",
        "localqueues",
    }
    assert _missing(calls, "rbac-hub.yaml", "gpulab-hub-kueue", "gpulab-hub-localqueues") == []
