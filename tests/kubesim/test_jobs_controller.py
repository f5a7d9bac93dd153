"""The batch/v1 Job controller, driven through the official ``kubernetes`` client."""

from __future__ import annotations

from typing import Any

import pytest
from kubelet_testlib import wait_for
from kubernetes import client
from kubernetes.client.exceptions import ApiException


@pytest.fixture
def batch(k8s: Any) -> client.BatchV1Api:
    return client.BatchV1Api(k8s)


@pytest.fixture
def core(k8s: Any) -> client.CoreV1Api:
    return client.CoreV1Api(k8s)


def job(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": spec.pop("restartPolicy", "Never"),
                    "containers": [{"name": "main", "image": "busybox:1.36", "command": command}],
                }
            },
            **spec,
        },
    }


def condition(batch: client.BatchV1Api, ns: str, name: str, *types: str) -> Any:
    status = batch.read_namespaced_job_status(name, ns).status
    for c in status.conditions or []:
        if c.type in types and c.status == "True":
            return c
    return None


def wait_finished(batch: client.BatchV1Api, ns: str, name: str) -> Any:
    return wait_for(
        f"job {name} finished", lambda: condition(batch, ns, name, "Complete", "Failed")
    )


def pods_of(core: client.CoreV1Api, ns: str, name: str) -> list[Any]:
    return core.list_namespaced_pod(ns, label_selector=f"batch.kubernetes.io/job-name={name}").items


def test_completions_and_parallelism(
    batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(
        namespace, job("three", ["sh", "-c", "sleep 0.3"], completions=3, parallelism=2)
    )
    assert wait_finished(batch, namespace, "three").type == "Complete"
    status = batch.read_namespaced_job_status("three", namespace).status
    assert (status.succeeded, status.active or 0, status.failed or 0) == (3, 0, 0)
    assert status.start_time and status.completion_time
    types = [c.type for c in status.conditions]
    assert types.index("SuccessCriteriaMet") < types.index("Complete")
    pods = pods_of(core, namespace, "three")
    assert len(pods) == 3
    uid = batch.read_namespaced_job("three", namespace).metadata.uid
    for p in pods:
        assert p.metadata.labels["controller-uid"] == uid
        assert p.metadata.labels["batch.kubernetes.io/controller-uid"] == uid
        assert p.metadata.labels["job-name"] == "three"
        ref = p.metadata.owner_references[0]
        assert (ref.kind, ref.uid, ref.controller, ref.block_owner_deletion) == (
            "Job",
            uid,
            True,
            True,
        )


def test_indexed_job(
    kubesim: Any, batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(
        namespace,
        job(
            "idx",
            ["sh", "-c", "echo index=$JOB_COMPLETION_INDEX"],
            completions=3,
            parallelism=3,
            completionMode="Indexed",
        ),
    )
    assert wait_finished(batch, namespace, "idx").type == "Complete"
    status = batch.read_namespaced_job_status("idx", namespace).status
    assert status.completed_indexes == "0-2" and status.succeeded == 3
    seen = set()
    for p in pods_of(core, namespace, "idx"):
        index = p.metadata.annotations["batch.kubernetes.io/job-completion-index"]
        assert p.metadata.labels["batch.kubernetes.io/job-completion-index"] == index
        assert p.metadata.name.startswith(f"idx-{index}-")
        out = kubesim.kubectl("logs", "-n", namespace, p.metadata.name).stdout
        assert out == f"index={index}\n"
        seen.add(index)
    assert seen == {"0", "1", "2"}


def test_backoff_limit(batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str) -> None:
    batch.create_namespaced_job(namespace, job("flaky", ["sh", "-c", "exit 2"], backoffLimit=1))
    cond = wait_finished(batch, namespace, "flaky")
    assert (cond.type, cond.reason) == ("Failed", "BackoffLimitExceeded")
    status = batch.read_namespaced_job_status("flaky", namespace).status
    assert status.failed == 2 and not status.succeeded
    assert condition(batch, namespace, "flaky", "FailureTarget") is not None
    events = core.list_namespaced_event(
        namespace, field_selector="involvedObject.name=flaky,reason=BackoffLimitExceeded"
    ).items
    assert events and events[0].type == "Warning"


def test_active_deadline(batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str) -> None:
    batch.create_namespaced_job(namespace, job("slow", ["sleep", "300"], activeDeadlineSeconds=1))
    cond = wait_finished(batch, namespace, "slow")
    assert (cond.type, cond.reason) == ("Failed", "DeadlineExceeded")
    wait_for(
        "the job's pods to be deleted",
        lambda: not [p for p in pods_of(core, namespace, "slow")],
    )


def test_suspend_and_resume(
    batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job("later", ["true"], suspend=True))
    wait_for("Suspended", lambda: condition(batch, namespace, "later", "Suspended"))
    assert pods_of(core, namespace, "later") == []
    batch.patch_namespaced_job("later", namespace, {"spec": {"suspend": False}})
    assert wait_finished(batch, namespace, "later").type == "Complete"
    suspended = next(
        c
        for c in batch.read_namespaced_job_status("later", namespace).status.conditions
        if c.type == "Suspended"
    )
    assert suspended.status == "False"


def test_suspend_deletes_active_pods(
    batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job("paused", ["sleep", "300"]))
    wait_for("a pod", lambda: pods_of(core, namespace, "paused"))
    batch.patch_namespaced_job("paused", namespace, {"spec": {"suspend": True}})
    wait_for("Suspended", lambda: condition(batch, namespace, "paused", "Suspended"))
    wait_for("pods deleted", lambda: not pods_of(core, namespace, "paused"))
    assert not batch.read_namespaced_job_status("paused", namespace).status.active


def test_ttl_after_finished(
    batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job("short", ["true"], ttlSecondsAfterFinished=1))

    def gone() -> bool:
        try:
            batch.read_namespaced_job("short", namespace)
        except ApiException as e:
            return e.status == 404
        return False

    wait_for("the job to be deleted by its TTL", gone)
    wait_for("its pods to be collected", lambda: not pods_of(core, namespace, "short"))


def test_on_failure_restarts_count_toward_backoff(batch: client.BatchV1Api, namespace: str) -> None:
    batch.create_namespaced_job(
        namespace,
        job("restarts", ["sh", "-c", "exit 1"], backoffLimit=1, restartPolicy="OnFailure"),
    )
    cond = wait_finished(batch, namespace, "restarts")
    assert (cond.type, cond.reason) == ("Failed", "BackoffLimitExceeded")
