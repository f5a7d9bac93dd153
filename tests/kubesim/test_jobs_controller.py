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


def test_indexed_job_requires_completions(batch: client.BatchV1Api, namespace: str) -> None:
    body = job("nocount", ["true"], parallelism=2, completionMode="Indexed")
    with pytest.raises(ApiException) as err:
        batch.create_namespaced_job(namespace, body)
    assert err.value.status == 422
    assert "spec.completions: Required value: when completion mode is Indexed" in err.value.body


def index_one_fails(name: str, others: str, **spec: Any) -> dict[str, Any]:
    """A two-index Job whose index 1 exits 3 and whose index 0 runs ``others``."""
    script = f'[ "$JOB_COMPLETION_INDEX" = 1 ] && exit 3; {others}'
    return job(name, ["sh", "-c", script], completions=2, parallelism=2,
               completionMode="Indexed", **spec)  # fmt: skip


def test_backoff_limit_per_index_fails_the_job_at_the_first_failed_index(
    batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    # Index 1 fails at once; index 0 would run for a minute: the Job fails without it.
    body = index_one_fails("perindex", "sleep 60", backoffLimitPerIndex=0, maxFailedIndexes=0)
    batch.create_namespaced_job(namespace, body)
    cond = wait_finished(batch, namespace, "perindex")
    assert (cond.type, cond.reason) == ("Failed", "MaxFailedIndexesExceeded")
    status = batch.read_namespaced_job_status("perindex", namespace).status
    assert status.failed_indexes == "1" and status.completed_indexes == ""
    wait_for(
        "index 0's pod stopped",
        lambda: all(
            p.metadata.deletion_timestamp or p.status.phase in ("Succeeded", "Failed")
            for p in pods_of(core, namespace, "perindex")
        ),
    )


def test_backoff_limit_per_index_retries_only_the_failing_index(
    batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    body = index_one_fails("retryidx", "true", backoffLimitPerIndex=1)
    batch.create_namespaced_job(namespace, body)
    cond = wait_finished(batch, namespace, "retryidx")
    assert (cond.type, cond.reason) == ("Failed", "FailedIndexes")
    status = batch.read_namespaced_job_status("retryidx", namespace).status
    assert (status.completed_indexes, status.failed_indexes, status.failed) == ("0", "1", 2)
    counts = sorted(
        p.metadata.annotations.get("batch.kubernetes.io/job-index-failure-count")
        for p in pods_of(core, namespace, "retryidx")
        if p.metadata.annotations["batch.kubernetes.io/job-completion-index"] == "1"
    )
    assert counts == ["0", "1"]


def test_indexed_pods_find_each_other_through_a_headless_service(
    kubesim: Any, batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "ring"},
            "spec": {
                "clusterIP": "None",
                "selector": {"ring": "yes"},
                "publishNotReadyAddresses": True,
            },
        },
    )
    # Each index waits (bounded) for its peer's name, then prints what the names resolve to.
    script = (
        "import os, socket, time\n"
        "me = int(os.environ['JOB_COMPLETION_INDEX'])\n"
        "peer = f'ring-{1 - me}.ring'\n"
        "deadline = time.monotonic() + 30\n"
        "while True:\n"
        "    try:\n"
        "        ip = socket.gethostbyname(peer); break\n"
        "    except OSError:\n"
        "        if time.monotonic() > deadline: raise\n"
        "        time.sleep(0.1)\n"
        f"full = socket.gethostbyname(peer + '.{namespace}.svc.cluster.local')\n"
        "print(socket.gethostname(), os.environ['HOSTNAME'], ip == full, ip)\n"
        "time.sleep(1)\n"  # stay up while the peer looks this pod up
    )
    body = job("ring", ["python", "-c", script], completions=2, parallelism=2,
               completionMode="Indexed")  # fmt: skip
    body["spec"]["template"]["metadata"] = {"labels": {"ring": "yes"}}
    body["spec"]["template"]["spec"]["subdomain"] = "ring"
    batch.create_namespaced_job(namespace, body)
    assert wait_finished(batch, namespace, "ring").type == "Complete"
    ips = {}
    for p in pods_of(core, namespace, "ring"):
        index = int(p.metadata.annotations["batch.kubernetes.io/job-completion-index"])
        assert (p.spec.hostname, p.spec.subdomain) == (f"ring-{index}", "ring")
        ips[index] = p.status.pod_ip
        out = kubesim.kubectl("logs", "-n", namespace, p.metadata.name).stdout.split()
        assert out[:3] == [f"ring-{index}", f"ring-{index}", "True"]
        ips[f"peer of {index}"] = out[3]
    assert ips["peer of 0"] == ips[1] and ips["peer of 1"] == ips[0]
