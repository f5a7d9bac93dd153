"""List and watch through kubernetes_asyncio: resourceVersion, 410, bookmarks, selectors."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from gpulab.kubesim.main import KubeSim
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException
from kubesim_testlib import pod


async def _events(
    core: Any, ns: str, count: int, **kwargs: Any
) -> list[tuple[str, dict[str, Any]]]:
    """The first ``count`` raw events of a watch (bounded by a server-side timeout)."""
    out: list[tuple[str, dict[str, Any]]] = []
    w = watch.Watch()
    async with w.stream(
        core.list_namespaced_pod, ns, _preload_content=False, timeout_seconds=20, **kwargs
    ) as stream:
        async for event in stream:
            out.append((event["type"], event["raw_object"]))
            if len(out) >= count:
                break
    return out


async def test_watch_from_list_resource_version_sees_every_later_change(
    k8s_async: Any, namespace: str
) -> None:
    # ConfigMaps: no controller writes to them, so the events are exactly ours.
    core = client.CoreV1Api(k8s_async)
    await core.create_namespaced_config_map(namespace, {"metadata": {"name": "before"}})
    rv = (await core.list_namespaced_config_map(namespace)).metadata.resource_version
    await core.create_namespaced_config_map(namespace, {"metadata": {"name": "after-1"}})
    await core.patch_namespaced_config_map(
        "before", namespace, {"metadata": {"labels": {"x": "y"}}}
    )
    await core.delete_namespaced_config_map("after-1", namespace)
    events: list[tuple[str, dict[str, Any]]] = []
    w = watch.Watch()
    async with w.stream(
        core.list_namespaced_config_map,
        namespace,
        resource_version=rv,
        timeout_seconds=20,
        _preload_content=False,
    ) as stream:
        async for event in stream:
            events.append((event["type"], event["raw_object"]))
            if len(events) == 3:
                break
    assert [(t, o["metadata"]["name"]) for t, o in events] == [
        ("ADDED", "after-1"),
        ("MODIFIED", "before"),
        ("DELETED", "after-1"),
    ]
    rvs = [int(o["metadata"]["resourceVersion"]) for _, o in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)


async def test_watch_without_resource_version_starts_with_current_objects(
    k8s_async: Any, namespace: str
) -> None:
    core = client.CoreV1Api(k8s_async)
    for name in ("a", "b"):
        await core.create_namespaced_pod(namespace, pod(name))
    events = await _events(core, namespace, 2)
    assert sorted((t, o["metadata"]["name"]) for t, o in events) == [("ADDED", "a"), ("ADDED", "b")]


async def test_list_carries_resource_version_and_item_namespaces(
    k8s_async: Any, namespace: str
) -> None:
    core = client.CoreV1Api(k8s_async)
    await core.create_namespaced_pod(namespace, pod("p"))
    everywhere = await core.list_pod_for_all_namespaces(
        label_selector="", field_selector=f"metadata.namespace={namespace}"
    )
    assert everywhere.metadata.resource_version
    assert [(p.metadata.namespace, p.metadata.name) for p in everywhere.items] == [(namespace, "p")]


async def test_label_change_turns_into_added_and_deleted_for_filtered_watch(
    k8s_async: Any, namespace: str
) -> None:
    core = client.CoreV1Api(k8s_async)
    body = {"metadata": {"name": "flip", "labels": {"role": "a"}}}
    created = await core.create_namespaced_config_map(namespace, body)
    rv = created.metadata.resource_version
    await core.patch_namespaced_config_map(
        "flip", namespace, {"metadata": {"labels": {"role": "b"}}}
    )
    await core.patch_namespaced_config_map(
        "flip", namespace, {"metadata": {"labels": {"role": "a"}}}
    )
    resp = await core.list_namespaced_config_map(
        namespace,
        watch=True,
        resource_version=rv,
        label_selector="role=b",
        timeout_seconds=20,
        _preload_content=False,
    )
    kinds = [json.loads(await resp.content.readline())["type"] for _ in range(2)]
    resp.close()
    assert kinds == ["ADDED", "DELETED"]


async def test_field_selector_watch_only_sees_matching_pods(k8s_async: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s_async)
    rv = (await core.list_namespaced_pod(namespace)).metadata.resource_version
    await core.create_namespaced_pod(namespace, pod("other"))
    await core.create_namespaced_pod(namespace, pod("wanted"))
    events = await _events(
        core, namespace, 1, resource_version=rv, field_selector="metadata.name=wanted"
    )
    assert [(t, o["metadata"]["name"]) for t, o in events] == [("ADDED", "wanted")]


async def test_watch_ends_after_timeout_seconds(k8s_async: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s_async)
    rv = (await core.list_namespaced_pod(namespace)).metadata.resource_version
    resp = await core.list_namespaced_pod(
        namespace, watch=True, resource_version=rv, timeout_seconds=1, _preload_content=False
    )
    body = await resp.read()  # returns because the server closes the stream
    assert body == b""


async def test_watch_sends_bookmarks_when_asked(kubesim_inproc: KubeSim) -> None:
    api = await config.new_client_from_config(config_file=str(kubesim_inproc.kubeconfig_path))
    try:
        core = client.CoreV1Api(api)
        rv = (await core.list_namespaced_pod("default")).metadata.resource_version
        resp = await core.list_namespaced_pod(
            "default",
            watch=True,
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=10,
            _preload_content=False,
        )
        line = await resp.content.readline()
        resp.close()
        assert b'"type":"BOOKMARK"' in line and b'"resourceVersion"' in line
    finally:
        await api.close()


async def test_watch_from_resource_version_older_than_history_gets_410(
    kubesim_inproc: KubeSim,
) -> None:
    api = await config.new_client_from_config(config_file=str(kubesim_inproc.kubeconfig_path))
    try:
        core = client.CoreV1Api(api)
        first = await core.create_namespaced_config_map("default", {"metadata": {"name": "c0"}})
        for i in range(1, 30):  # more changes than the fixture's history window of 20
            await core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
        w = watch.Watch()
        try:
            async with w.stream(
                core.list_namespaced_config_map,
                "default",
                resource_version=first.metadata.resource_version,
                timeout_seconds=5,
            ) as stream:
                async for _ in stream:
                    pass
        except ApiException as e:
            assert e.status == 410
        else:
            raise AssertionError("expected 410 Gone")
    finally:
        await api.close()


async def test_forced_gone_fault_sends_410_error_event(
    kubesim: Any, k8s_async: Any, namespace: str
) -> None:
    core = client.CoreV1Api(k8s_async)
    rv = (await core.list_namespaced_pod(namespace)).metadata.resource_version
    kubesim.set_faults(gone_next_watch=True, match=f"/namespaces/{namespace}/pods")
    try:
        resp = await core.list_namespaced_pod(
            namespace, watch=True, resource_version=rv, timeout_seconds=10, _preload_content=False
        )
        event = json.loads(await resp.content.readline())
        resp.close()
    finally:
        kubesim.clear_faults()
    assert event["type"] == "ERROR"
    assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")


async def test_a_cut_fault_ends_watches_already_open(
    kubesim: Any, k8s_async: Any, namespace: str
) -> None:
    core = client.CoreV1Api(k8s_async)
    rv = (await core.list_namespaced_config_map(namespace)).metadata.resource_version
    resp = await core.list_namespaced_config_map(
        namespace, watch=True, resource_version=rv, timeout_seconds=60, _preload_content=False
    )
    kubesim.set_faults(cut_watches_after_s=0.2, match=f"/namespaces/{namespace}/configmaps$")
    try:
        # The watch opened before the fault was set still ends (EOF) long before its 60 s.
        assert await asyncio.wait_for(resp.content.read(), 10) == b""
    finally:
        resp.close()
        kubesim.clear_faults()


async def test_watch_stream_is_chunked_json_lines(k8s_async: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s_async)
    rv = (await core.list_namespaced_pod(namespace)).metadata.resource_version
    resp = await core.list_namespaced_pod(
        namespace, watch="true", resource_version=rv, timeout_seconds=10, _preload_content=False
    )
    await core.create_namespaced_pod(namespace, pod("chunk"))
    line = await asyncio.wait_for(resp.content.readline(), 10)
    resp.close()
    assert resp.headers.get("Transfer-Encoding") == "chunked"
    assert line.startswith(b'{"type":"ADDED"') and line.endswith(b"\n")
