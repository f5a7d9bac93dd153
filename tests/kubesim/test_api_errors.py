"""Bad input answers a proper 4xx Status and leaves state untouched (official client + raw HTTP).

Malformed bodies and wrong content types cannot be produced by the typed clients, so those
few tests send raw HTTP with urllib.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes_asyncio import client as async_client
from kubernetes_asyncio.client.exceptions import ApiException as AsyncApiException
from kubesim_testlib import KubesimProcess, pod


def _raw(
    kubesim: KubesimProcess, method: str, path: str, body: bytes, ctype: str
) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        kubesim.url + path, data=body, method=method, headers={"Content-Type": ctype}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback URL
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _error(excinfo: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    return json.loads(excinfo.value.body)


def _pod_names(k8s: Any, ns: str) -> list[str]:
    return [p.metadata.name for p in client.CoreV1Api(k8s).list_namespaced_pod(ns).items]


def test_malformed_json_is_400_and_creates_nothing(
    kubesim: KubesimProcess, k8s: Any, namespace: str
) -> None:
    code, status = _raw(
        kubesim,
        "POST",
        f"/api/v1/namespaces/{namespace}/pods",
        b'{"kind": "Pod", ',
        "application/json",
    )
    assert (code, status["kind"], status["reason"]) == (400, "Status", "BadRequest")
    assert _pod_names(k8s, namespace) == []


def test_wrong_content_type_is_415(kubesim: KubesimProcess, namespace: str) -> None:
    body = json.dumps(pod("x")).encode()
    code, status = _raw(
        kubesim,
        "POST",
        f"/api/v1/namespaces/{namespace}/pods",
        body,
        "application/vnd.kubernetes.protobuf",
    )
    assert (code, status["reason"]) == (415, "UnsupportedMediaType")


def test_body_over_3_mib_is_413(kubesim: KubesimProcess, namespace: str) -> None:
    big = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "big"},
        "data": {"x": "a" * (3 * 1024 * 1024 + 10)},
    }
    code, status = _raw(
        kubesim,
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        json.dumps(big).encode(),
        "application/json",
    )
    assert (code, status["reason"]) == (413, "RequestEntityTooLarge")


async def test_unknown_field_is_422_naming_the_field(k8s_async: Any, namespace: str) -> None:
    # kubernetes_asyncio passes dict bodies through (the sync client validates them itself).
    body = pod("strict")
    body["spec"]["containers"][0]["imagee"] = "typo"
    with pytest.raises(AsyncApiException) as e:
        await async_client.CoreV1Api(k8s_async).create_namespaced_pod(namespace, body)
    status = json.loads(e.value.body)
    assert e.value.status == 422 and status["reason"] == "Invalid"
    assert 'strict decoding error: unknown field "spec.containers[0].imagee"' in status["message"]
    assert [c["field"] for c in status["details"]["causes"]] == ["spec.containers[0].imagee"]


async def test_wrong_type_is_422_with_field_cause(k8s_async: Any, namespace: str) -> None:
    body = pod("typed")
    body["spec"]["containers"][0]["image"] = 42
    with pytest.raises(AsyncApiException) as e:
        await async_client.CoreV1Api(k8s_async).create_namespaced_pod(namespace, body)
    assert e.value.status == 422
    causes = json.loads(e.value.body)["details"]["causes"]
    assert "spec.containers[0].image" in [c["field"] for c in causes]


def test_name_that_is_not_dns_label_is_422(k8s: Any) -> None:
    with pytest.raises(ApiException) as e:
        client.CoreV1Api(k8s).create_namespace({"metadata": {"name": "Team_A"}})
    status = _error(e)
    assert e.value.status == 422
    assert status["details"]["causes"][0]["field"] == "metadata.name"
    assert "RFC 1123 label" in status["details"]["causes"][0]["message"]


def test_bad_label_value_is_422(k8s: Any, namespace: str) -> None:
    with pytest.raises(ApiException) as e:
        client.CoreV1Api(k8s).create_namespaced_pod(namespace, pod("l", labels={"app": "not ok!"}))
    assert e.value.status == 422 and _error(e)["details"]["causes"][0]["field"] == "metadata.labels"


def test_create_in_missing_namespace_is_404(k8s: Any) -> None:
    with pytest.raises(ApiException) as e:
        client.CoreV1Api(k8s).create_namespaced_pod("no-such-ns", pod("p"))
    assert e.value.status == 404 and _error(e)["message"] == 'namespaces "no-such-ns" not found'


def test_create_twice_is_409_already_exists(k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    core.create_namespaced_pod(namespace, pod("twice"))
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod(namespace, pod("twice"))
    assert e.value.status == 409 and _error(e)["reason"] == "AlreadyExists"


def test_get_missing_is_404_with_details(k8s: Any, namespace: str) -> None:
    with pytest.raises(ApiException) as e:
        client.CoreV1Api(k8s).read_namespaced_pod("nope", namespace)
    status = _error(e)
    assert (status["reason"], status["details"]) == ("NotFound", {"name": "nope", "kind": "pods"})


def test_unknown_resource_is_404(kubesim: KubesimProcess) -> None:
    code, status = _raw(
        kubesim, "GET", "/apis/apps/v1/namespaces/default/deployments", b"", "application/json"
    )
    assert (code, status["reason"]) == (404, "NotFound")


def test_unsupported_field_selector_is_400(k8s: Any, namespace: str) -> None:
    with pytest.raises(ApiException) as e:
        client.CoreV1Api(k8s).list_namespaced_pod(namespace, field_selector="spec.image=x")
    assert e.value.status == 400 and _error(e)["message"] == "field label not supported: spec.image"


def test_job_with_restart_policy_always_is_422(k8s: Any, namespace: str) -> None:
    job = {
        "metadata": {"name": "j"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
    }
    with pytest.raises(ApiException) as e:
        client.BatchV1Api(k8s).create_namespaced_job(namespace, job)
    assert e.value.status == 422
    assert _error(e)["details"]["causes"][0]["field"] == "spec.template.spec.restartPolicy"


@pytest.mark.parametrize(
    "body",
    [
        {"metadata": {"name": 5}, "spec": {"containers": []}},
        {
            "metadata": {"name": "a", "labels": ["x"]},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        },
        {"metadata": {"name": "a"}, "spec": {"containers": "x"}},
        {"metadata": None},
        [],
    ],
    ids=["name-int", "labels-list", "containers-str", "metadata-null", "array"],
)
def test_malformed_object_shapes_are_4xx_never_500(
    kubesim: KubesimProcess, namespace: str, body: Any
) -> None:
    code, status = _raw(
        kubesim,
        "POST",
        f"/api/v1/namespaces/{namespace}/pods",
        json.dumps(body).encode(),
        "application/json",
    )
    assert code in (400, 422) and status["kind"] == "Status"


def test_invalid_quota_quantity_is_rejected_and_pods_still_admitted(
    kubesim: KubesimProcess, k8s: Any, namespace: str
) -> None:
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q"},
        "spec": {"hard": {"pods": "lots"}},
    }
    code, status = _raw(
        kubesim,
        "POST",
        f"/api/v1/namespaces/{namespace}/resourcequotas",
        json.dumps(quota).encode(),
        "application/json",
    )
    assert (code, status["details"]["causes"][0]["field"]) == (422, "spec.hard[pods]")
    client.CoreV1Api(k8s).create_namespaced_pod(namespace, pod("fine"))
