"""LimitRange: container defaults, minima and maxima at pod admission, through the official
client; and the shipped limits.yaml (LimitRange + ResourceQuota) working together."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubesim_testlib import pod

ROOT = Path(__file__).resolve().parents[2]
LIMITS = ROOT / "helm-values" / "manifests" / "limits.yaml"


def _limit_range(core: Any, ns: str, item: dict[str, Any]) -> None:
    core.create_namespaced_limit_range(
        ns, {"metadata": {"name": "limits"}, "spec": {"limits": [{"type": "Container", **item}]}}
    )


def _resources(core: Any, ns: str, name: str) -> dict[str, Any]:
    created = core.read_namespaced_pod(name, ns)
    res = created.spec.containers[0].resources
    return {"requests": res.requests, "limits": res.limits}


def _forbidden(call: Any) -> str:
    with pytest.raises(ApiException) as e:
        call()
    status = json.loads(e.value.body)
    assert (e.value.status, status["reason"]) == (403, "Forbidden")
    return status["message"]


def test_a_container_naming_nothing_gets_the_defaults(k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    _limit_range(
        core,
        namespace,
        {
            "default": {"cpu": "2", "memory": "4Gi"},
            "defaultRequest": {"cpu": "100m", "memory": "256Mi"},
        },
    )
    core.create_namespaced_pod(namespace, pod("plain"))
    assert _resources(core, namespace, "plain") == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }


def test_a_container_with_only_a_limit_requests_its_limit(k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    _limit_range(core, namespace, {"default": {"cpu": "2"}, "defaultRequest": {"cpu": "100m"}})
    body = pod("limited")
    body["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1"}}
    core.create_namespaced_pod(namespace, body)
    assert _resources(core, namespace, "limited") == {
        "requests": {"cpu": "1"},
        "limits": {"cpu": "1"},
    }


OUT_OF_BOUNDS = {
    "over the maximum": (
        {"max": {"cpu": "4"}},
        {"limits": {"cpu": "1024"}},
        "maximum cpu usage per Container is 4, but limit is 1024",
    ),
    "under the minimum": (
        {"min": {"memory": "64Mi"}},
        {"requests": {"memory": "1Mi"}},
        "minimum memory usage per Container is 64Mi, but request is 1Mi",
    ),
}


@pytest.mark.parametrize(("item", "resources", "why"), OUT_OF_BOUNDS.values(), ids=OUT_OF_BOUNDS)
def test_a_container_out_of_bounds_is_403_in_the_apiservers_words(
    k8s: Any, namespace: str, item: dict[str, Any], resources: dict[str, Any], why: str
) -> None:
    core = client.CoreV1Api(k8s)
    _limit_range(core, namespace, item)
    body = pod("odd")
    body["spec"]["containers"][0]["resources"] = resources
    message = _forbidden(lambda: core.create_namespaced_pod(namespace, body))
    assert message == f'pods "odd" is forbidden: {why}'


def test_a_limit_range_with_only_a_maximum_defaults_to_it(k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    _limit_range(core, namespace, {"max": {"cpu": "4"}})
    [item] = core.read_namespaced_limit_range("limits", namespace).spec.limits
    assert (item.default, item.default_request) == ({"cpu": "4"}, {"cpu": "4"})


def test_a_bad_quantity_is_422_naming_the_field(k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    with pytest.raises(ApiException) as e:
        _limit_range(core, namespace, {"max": {"cpu": "lots"}})
    causes = json.loads(e.value.body)["details"]["causes"]
    assert (e.value.status, causes[0]["field"]) == (422, "spec.limits[0].max[cpu]")


def test_the_shipped_limits_admit_a_plain_pod_under_the_quota_and_refuse_a_hog(
    k8s: Any, namespace: str
) -> None:
    """The namespace ResourceQuota counts requests.cpu: a pod naming none is admitted only
    because the LimitRange gives it the default request."""
    core = client.CoreV1Api(k8s)
    for doc in yaml.safe_load_all(LIMITS.read_text()):
        doc["metadata"].pop("namespace")
        if doc["kind"] == "LimitRange":
            core.create_namespaced_limit_range(namespace, doc)
        else:
            core.create_namespaced_resource_quota(namespace, doc)
    core.create_namespaced_pod(namespace, pod("plain"))
    assert _resources(core, namespace, "plain")["requests"] == {"cpu": "100m", "memory": "256Mi"}
    body = pod("hog")
    body["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1024", "memory": "64Ti"}}
    message = _forbidden(lambda: core.create_namespaced_pod(namespace, body))
    assert "maximum cpu usage per Container is 32, but limit is 1024" in message
    assert "maximum memory usage per Container is 256Gi, but limit is 64Ti" in message
