"""In-process subscribers of kubesim's store: a read-only one gets the committed object itself
(no copy per change), any other one a copy it may change without touching the store; a create
from a request body (handed over) is stored without copying."""

from __future__ import annotations

from typing import Any

from gpulab.kubesim.store import Store, WatchEvent, resource

CONFIGMAPS = resource("configmaps")


def _store() -> Store:
    store = Store()
    store.create(resource("namespaces"), None, {"metadata": {"name": "ns"}})
    return store


def _stored(store: Store) -> dict[str, Any]:
    """The store's own snapshot of the ConfigMap (read-only)."""
    items, _ = store.list(CONFIGMAPS, "ns", copy_objects=False)
    return items[0]


def _configmap() -> dict[str, Any]:
    return {"metadata": {"name": "cm"}, "data": {"a": "1"}}


def test_a_read_only_subscriber_gets_the_committed_object() -> None:
    store = _store()
    seen: list[WatchEvent] = []
    store.subscribe(lambda rt, event: seen.append(event), read_only=True)
    store.create(CONFIGMAPS, "ns", _configmap())
    assert seen[-1].object is _stored(store)


def test_another_subscriber_gets_a_copy_it_may_change() -> None:
    store = _store()
    seen: list[WatchEvent] = []
    store.subscribe(lambda rt, event: seen.append(event))
    store.create(CONFIGMAPS, "ns", _configmap())
    seen[-1].object["data"]["a"] = "changed"
    assert store.get(CONFIGMAPS, "ns", "cm")["data"] == {"a": "1"}


def test_an_unsubscribed_read_only_subscriber_is_called_no_more() -> None:
    store = _store()
    seen: list[WatchEvent] = []
    unsubscribe = store.subscribe(lambda rt, event: seen.append(event), read_only=True)
    unsubscribe()
    store.create(CONFIGMAPS, "ns", _configmap())
    assert seen == []


def test_a_handed_over_create_is_stored_as_given() -> None:
    store = _store()
    body = _configmap()
    stored = store.create(CONFIGMAPS, "ns", body, copy_objects=False)
    assert stored is body is _stored(store)
    assert stored["metadata"]["uid"]


def test_a_create_by_default_keeps_the_callers_object_apart() -> None:
    store = _store()
    body = _configmap()
    stored = store.create(CONFIGMAPS, "ns", body)
    stored["data"]["a"] = "changed"
    body["data"]["a"] = "also changed"
    assert store.get(CONFIGMAPS, "ns", "cm")["data"] == {"a": "1"}
