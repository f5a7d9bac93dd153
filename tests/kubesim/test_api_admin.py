"""kubesim-only admin endpoints: fault injection and request accounting."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubesim_testlib import KubesimProcess


def test_injected_errors_reach_the_client_as_status(
    kubesim: KubesimProcess, k8s: Any, namespace: str
) -> None:
    kubesim.set_faults(
        error_rate=1.0, error_codes=[503], match=f"/namespaces/{namespace}/configmaps"
    )
    try:
        with pytest.raises(ApiException) as e:
            client.CoreV1Api(k8s).list_namespaced_config_map(namespace)
    finally:
        kubesim.clear_faults()
    assert e.value.status == 503 and json.loads(e.value.body)["reason"] == "ServiceUnavailable"
    client.CoreV1Api(k8s).list_namespaced_config_map(namespace)  # cleared: works again


def test_faults_are_off_by_default(kubesim: KubesimProcess) -> None:
    faults = kubesim.clear_faults()
    assert faults["error_rate"] == 0 and faults["latency_ms"] == 0 and not faults["gone_next_watch"]


def test_request_counters_count_by_verb_and_resource(
    kubesim: KubesimProcess, k8s: Any, namespace: str
) -> None:
    before = kubesim.requests()["counts"].get("create configmaps", 0)
    client.CoreV1Api(k8s).create_namespaced_config_map(namespace, {"metadata": {"name": "counted"}})
    assert kubesim.requests()["counts"]["create configmaps"] == before + 1


def test_audit_log_has_a_json_line_per_request(
    kubesim: KubesimProcess, k8s: Any, namespace: str
) -> None:
    with pytest.raises(ApiException):
        client.CoreV1Api(k8s).read_namespaced_config_map("audited-missing", namespace)
    records = [json.loads(line) for line in kubesim.audit_log.read_text().splitlines()]
    hit = [r for r in records if r["name"] == "audited-missing"]
    assert hit and hit[-1] | {"userAgent": None, "path": None} == {
        "verb": "get",
        "apiGroup": "",
        "resource": "configmaps",
        "subresource": "",
        "namespace": namespace,
        "name": "audited-missing",
        "userAgent": None,
        "code": 404,
        "path": None,
    }


async def test_open_watch_is_counted_while_it_streams(
    kubesim: KubesimProcess, k8s_async: Any, namespace: str
) -> None:
    from kubernetes_asyncio import client as async_client

    before = kubesim.requests()["counts"].get("watch pods", 0)
    core = async_client.CoreV1Api(k8s_async)
    resp = await core.list_namespaced_pod(
        namespace, watch=True, timeout_seconds=30, _preload_content=False
    )
    try:
        assert kubesim.requests()["counts"]["watch pods"] == before + 1
    finally:
        resp.close()
