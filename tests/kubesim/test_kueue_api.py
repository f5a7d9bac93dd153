"""kubesim's Kueue through its HTTP API with the official ``kubernetes`` client: the served
``kueue.x-k8s.io/v1beta2`` kinds, Jobs and Pods queued, admitted, preempted and requeued.

The session kubesim runs with ``--kueue``. Each test makes its own ResourceFlavor and
queues (cluster objects named after its namespace), so tests do not share quota.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from gpulab.kubesim.config import KubesimConfig
from gpulab.kubesim.main import KubeSim
from kubelet_testlib import wait_for
from kubernetes import client
from kubernetes.client.exceptions import ApiException

GROUP, VERSION = "kueue.x-k8s.io", "v1beta2"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
A100 = {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}


class Kueue:
    """The test's Kueue objects: one flavor, and queues made on demand, removed at the end."""

    def __init__(self, api: client.ApiClient, ns: str) -> None:
        self.objects = client.CustomObjectsApi(api)
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.ns = ns
        self.flavor = f"a100-{ns}"
        self.made: list[tuple[str, str]] = []
        self.create(
            "resourceflavors", {"metadata": {"name": self.flavor}, "spec": {"nodeLabels": A100}}
        )

    def create(self, plural: str, body: dict[str, Any], namespaced: bool = False) -> Any:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": _KINDS[plural], **body}
        if namespaced:
            return self.objects.create_namespaced_custom_object(
                GROUP, VERSION, self.ns, plural, body
            )
        self.made.append((plural, body["metadata"]["name"]))
        return self.objects.create_cluster_custom_object(GROUP, VERSION, plural, body)

    def queue(
        self,
        name: str,
        gpus: int,
        cohort: str | None = None,
        borrow: int | None = None,
        lend: int | None = None,
        preemption: dict[str, Any] | None = None,
    ) -> str:
        """A ClusterQueue with ``gpus`` nominal GPUs and a LocalQueue ``name`` pointing at it."""
        quota: dict[str, Any] = {"name": "nvidia.com/gpu", "nominalQuota": gpus}
        if borrow is not None:
            quota["borrowingLimit"] = borrow
        if lend is not None:
            quota["lendingLimit"] = lend
        spec: dict[str, Any] = {
            "namespaceSelector": {},
            "resourceGroups": [
                {
                    "coveredResources": ["nvidia.com/gpu"],
                    "flavors": [{"name": self.flavor, "resources": [quota]}],
                }
            ],
        }
        if cohort:
            spec["cohortName"] = f"{cohort}-{self.ns}"
        if preemption:
            spec["preemption"] = preemption
        cq = f"{name}-{self.ns}"
        self.create("clusterqueues", {"metadata": {"name": cq}, "spec": spec})
        self.create("localqueues", {"metadata": {"name": name}, "spec": {"clusterQueue": cq}}, True)
        return cq

    def job(self, name: str, queue: str, gpus: int, seconds: int = 3600, **labels: str) -> None:
        body = {
            "metadata": {"name": name, "labels": {QUEUE_LABEL: queue, **labels}},
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "terminationGracePeriodSeconds": 1,
                        "containers": [
                            {
                                "name": "main",
                                "image": "busybox:1.36",
                                "command": ["sleep", str(seconds)],
                                "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                            }
                        ],
                    }
                }
            },
        }
        self.batch.create_namespaced_job(self.ns, body)

    def workload_of(self, job: str) -> dict[str, Any] | None:
        for wl in self.objects.list_namespaced_custom_object(GROUP, VERSION, self.ns, "workloads")[
            "items"
        ]:
            if any(r["name"] == job for r in wl["metadata"].get("ownerReferences") or []):
                return wl
        return None

    def condition(self, job: str, type_: str) -> dict[str, Any] | None:
        wl = self.workload_of(job) or {}
        for c in (wl.get("status") or {}).get("conditions") or []:
            if c["type"] == type_ and c["status"] == "True":
                return c
        return None

    def running_pods(self, job: str) -> list[Any]:
        pods = self.core.list_namespaced_pod(
            self.ns, label_selector=f"batch.kubernetes.io/job-name={job}"
        ).items
        return [
            p for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp
        ]

    def cleanup(self) -> None:
        for plural, name in reversed(self.made):
            try:
                self.objects.delete_cluster_custom_object(GROUP, VERSION, plural, name)
            except ApiException:
                pass


def get_json(api: client.ApiClient, path: str) -> Any:
    """GET a path the generated client has no method for (Kueue's visibility API)."""
    resp = api.call_api("GET", api.configuration.host + path, {"Accept": "application/json"})
    return json.loads(resp.read())


_KINDS = {
    "resourceflavors": "ResourceFlavor",
    "clusterqueues": "ClusterQueue",
    "localqueues": "LocalQueue",
    "workloadpriorityclasses": "WorkloadPriorityClass",
    "cohorts": "Cohort",
}


@pytest.fixture
def kueue(k8s: Any, namespace: str) -> Iterator[Kueue]:
    k = Kueue(k8s, namespace)
    yield k
    k.cleanup()


def test_discovery_lists_the_kueue_api_group(k8s: Any) -> None:
    groups = client.ApisApi(k8s).get_api_versions().groups
    kueue = next(g for g in groups if g.name == GROUP)
    assert kueue.preferred_version.group_version == f"{GROUP}/{VERSION}"
    names = {
        r.name for r in client.CustomObjectsApi(k8s).get_api_resources(GROUP, VERSION).resources
    }
    assert {"clusterqueues", "cohorts", "localqueues", "resourceflavors", "workloads",
            "workloadpriorityclasses"} <= names  # fmt: skip


def test_a_cluster_queue_against_the_crd_schema_is_refused_naming_the_field(
    kueue: Kueue,
) -> None:
    with pytest.raises(ApiException) as err:
        kueue.create(
            "clusterqueues",
            {"metadata": {"name": f"bad-{kueue.ns}"}, "spec": {"queueingStrategy": "Sometimes"}},
        )
    assert err.value.status == 422
    assert "spec.queueingStrategy" in err.value.body


def test_a_queued_job_is_admitted_and_runs_on_its_flavor_nodes(kueue: Kueue) -> None:
    kueue.queue("lq", gpus=1)
    kueue.job("j1", "lq", gpus=1)
    wait_for("j1 running", lambda: kueue.running_pods("j1"))
    job = kueue.batch.read_namespaced_job("j1", kueue.ns)
    assert job.spec.suspend is False
    assert job.spec.template.spec.node_selector == A100
    wl = kueue.workload_of("j1")
    assert wl is not None
    assert wl["status"]["admission"]["podSetAssignments"][0]["flavors"] == {
        "nvidia.com/gpu": kueue.flavor
    }
    assert kueue.condition("j1", "QuotaReserved") and kueue.condition("j1", "Admitted")
    lq = kueue.objects.get_namespaced_custom_object(GROUP, VERSION, kueue.ns, "localqueues", "lq")
    assert lq["status"]["admittedWorkloads"] == 1
    assert lq["status"]["flavorsUsage"] == [
        {"name": kueue.flavor, "resources": [{"name": "nvidia.com/gpu", "total": "1"}]}
    ]


def test_a_job_over_quota_stays_suspended_until_quota_frees(kueue: Kueue) -> None:
    kueue.queue("lq", gpus=1)
    kueue.job("first", "lq", gpus=1, seconds=1)
    kueue.job("second", "lq", gpus=1, seconds=1)
    wl = wait_for(
        "second pending", lambda: (w := kueue.workload_of("second")) and w.get("status") and w
    )
    reserved = next(c for c in wl["status"]["conditions"] if c["type"] == "QuotaReserved")
    assert reserved["status"] == "False" and reserved["reason"] == "Pending"
    assert "insufficient unused quota for nvidia.com/gpu" in reserved["message"]
    assert kueue.batch.read_namespaced_job("second", kueue.ns).spec.suspend is True
    wait_for("first finished", lambda: kueue.condition("first", "Finished"))
    wait_for("second admitted", lambda: kueue.condition("second", "Admitted"))


def test_a_borrowing_job_is_preempted_requeued_and_readmitted(kueue: Kueue) -> None:
    reclaim = {"reclaimWithinCohort": "Any", "withinClusterQueue": "LowerPriority"}
    kueue.queue("lender", gpus=2, cohort="co", preemption=reclaim)
    kueue.queue("borrower", gpus=0, cohort="co", borrow=2)
    kueue.job("borrowed", "borrower", gpus=2)
    wait_for("borrowed running", lambda: kueue.running_pods("borrowed"))
    kueue.job("owner", "lender", gpus=2, seconds=4)
    preempted = wait_for("preempted", lambda: kueue.condition("borrowed", "Preempted"))
    assert preempted["reason"] == "InCohortReclamation"
    assert kueue.condition("borrowed", "Evicted")["reason"] == "Preempted"
    assert kueue.batch.read_namespaced_job("borrowed", kueue.ns).spec.suspend is True
    # Its quota is released, and it is requeued, once its pods are gone.
    wait_for("borrowed requeued", lambda: kueue.condition("borrowed", "Requeued"))
    wl = kueue.workload_of("borrowed")
    assert wl["status"]["requeueState"]["count"] == 1
    wait_for("owner admitted", lambda: kueue.condition("owner", "Admitted"))
    wait_for("borrowed readmitted", lambda: kueue.running_pods("borrowed"))
    evicted = next(
        c for c in kueue.workload_of("borrowed")["status"]["conditions"] if c["type"] == "Evicted"
    )
    assert evicted["status"] == "False" and evicted["message"].startswith("Previously: ")
    reasons = {
        e.reason
        for e in kueue.core.list_namespaced_event(kueue.ns).items
        if e.involved_object.name == wl["metadata"]["name"]
    }
    assert {"Preempted", "EvictedDueToPreempted", "QuotaReserved", "Admitted"} <= reasons


def test_a_queued_pod_is_gated_until_admitted(kueue: Kueue) -> None:
    kueue.queue("lq", gpus=1)
    kueue.job("holder", "lq", gpus=1, seconds=2)
    wait_for("holder admitted", lambda: kueue.condition("holder", "Admitted"))
    pod = {
        "metadata": {"name": "server", "labels": {QUEUE_LABEL: "lq"}},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox:1.36",
                    "command": ["sleep", "3600"],
                    "resources": {"limits": {"nvidia.com/gpu": "1"}},
                }
            ],
            "terminationGracePeriodSeconds": 1,
        },
    }
    created = kueue.core.create_namespaced_pod(kueue.ns, pod)
    assert [g.name for g in created.spec.scheduling_gates] == ["kueue.x-k8s.io/admission"]

    def gated() -> Any:
        p = kueue.core.read_namespaced_pod("server", kueue.ns)
        return next(
            (
                c
                for c in p.status.conditions or []
                if c.type == "PodScheduled" and c.reason == "SchedulingGated"
            ),
            None,
        )

    assert wait_for("server gated", gated).status == "False"
    running = wait_for(
        "server running",
        lambda: (
            (p := kueue.core.read_namespaced_pod("server", kueue.ns)).status.phase == "Running"
            and p
        ),
    )
    assert not running.spec.scheduling_gates
    assert running.spec.node_selector == A100


def test_a_pod_naming_a_missing_priority_class_is_refused(k8s: Any, namespace: str) -> None:
    pod = {
        "metadata": {"name": "p"},
        "spec": {
            "priorityClassName": f"missing-{uuid.uuid4().hex[:6]}",
            "containers": [{"name": "main", "image": "busybox:1.36"}],
            "nodeSelector": {"kubesim.test/never": "true"},
        },
    }
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(k8s).create_namespaced_pod(namespace, pod)
    assert err.value.status == 403
    assert "no PriorityClass with name" in err.value.body


def test_a_pod_gets_the_value_of_its_priority_class(k8s: Any, namespace: str) -> None:
    name = f"pc-{namespace}"
    sched = client.SchedulingV1Api(k8s)
    sched.create_priority_class({"metadata": {"name": name}, "value": 1000})
    try:
        pod = {
            "metadata": {"name": "p"},
            "spec": {
                "priorityClassName": name,
                "containers": [{"name": "main", "image": "busybox:1.36"}],
                "nodeSelector": {"kubesim.test/never": "true"},
            },
        }
        created = client.CoreV1Api(k8s).create_namespaced_pod(namespace, pod)
        assert created.spec.priority == 1000
    finally:
        sched.delete_priority_class(name)


async def test_without_the_kueue_option_the_api_group_is_not_served(kubesim_inproc: Any) -> None:
    async with aiohttp.ClientSession(kubesim_inproc.url) as http:
        async with http.get("/apis") as r:
            assert GROUP not in {g["name"] for g in (await r.json())["groups"]}
        async with http.get(f"/apis/{GROUP}/{VERSION}/clusterqueues") as r:
            assert r.status == 404


def test_the_visibility_api_lists_pending_workloads_with_their_positions(
    k8s: Any, kueue: Kueue
) -> None:
    cq = kueue.queue("lq", gpus=1)
    kueue.job("running", "lq", gpus=1)
    wait_for("running admitted", lambda: kueue.condition("running", "Admitted"))
    kueue.job("next", "lq", gpus=1)
    kueue.job("after", "lq", gpus=1)
    path = f"/apis/visibility.kueue.x-k8s.io/v1beta2/namespaces/{kueue.ns}/localqueues/lq/pendingworkloads"

    def pending() -> list[dict[str, Any]]:
        data = get_json(k8s, path)
        return data["items"] if len(data["items"]) == 2 else []

    items = wait_for("two pending", pending)
    owners = [i["metadata"]["ownerReferences"][0]["name"] for i in items]
    assert owners == ["next", "after"]
    assert [i["positionInLocalQueue"] for i in items] == [0, 1]
    assert all(i["localQueueName"] == "lq" for i in items)
    cq_path = f"/apis/visibility.kueue.x-k8s.io/v1beta2/clusterqueues/{cq}/pendingworkloads"
    data = get_json(k8s, cq_path)
    assert [i["positionInClusterQueue"] for i in data["items"]] == [0, 1]


def test_deleting_an_admitted_job_frees_its_quota(kueue: Kueue) -> None:
    kueue.queue("lq", gpus=1)
    kueue.job("first", "lq", gpus=1)
    wait_for("first admitted", lambda: kueue.condition("first", "Admitted"))
    kueue.job("second", "lq", gpus=1)
    kueue.batch.delete_namespaced_job("first", kueue.ns)  # the Jobs' default: Orphan
    wait_for("second admitted", lambda: kueue.condition("second", "Admitted"))
    assert kueue.workload_of("first") is None


def test_a_user_queue_runs_within_its_group_cohort_quota(kueue: Kueue) -> None:
    root, group = f"gpulab-{kueue.ns}", f"gpulab-vision-{kueue.ns}"
    kueue.create("cohorts", {"metadata": {"name": root}})
    kueue.create(
        "cohorts",
        {
            "metadata": {"name": group},
            "spec": {
                "parentName": root,
                "resourceGroups": [
                    {
                        "coveredResources": ["nvidia.com/gpu"],
                        "flavors": [
                            {
                                "name": kueue.flavor,
                                "resources": [
                                    {
                                        "name": "nvidia.com/gpu",
                                        "nominalQuota": 1,
                                        "borrowingLimit": 0,
                                    }
                                ],
                            }
                        ],
                    }
                ],
            },
        },
    )
    kueue.queue("alice", gpus=0, cohort="gpulab-vision", borrow=2)
    kueue.job("a1", "alice", gpus=1)
    kueue.job("a2", "alice", gpus=1)
    wait_for("a1 admitted", lambda: kueue.condition("a1", "Admitted"))
    wl = wait_for("a2 waits", lambda: (w := kueue.workload_of("a2")) and w.get("status") and w)
    assert not kueue.condition("a2", "Admitted")
    assert "1 more needed" in wl["status"]["conditions"][0]["message"]


def test_a_job_for_a_missing_local_queue_waits_saying_so(kueue: Kueue) -> None:
    kueue.job("lost", "nowhere", gpus=1)
    wl = wait_for(
        "lost pending", lambda: (w := kueue.workload_of("lost")) and w.get("status") and w
    )
    assert wl["status"]["conditions"][0]["message"] == "LocalQueue nowhere doesn't exist"


def test_a_workload_priority_class_sets_the_workload_priority(kueue: Kueue) -> None:
    name = f"high-{kueue.ns}"
    kueue.create("workloadpriorityclasses", {"metadata": {"name": name}, "value": 1000})
    kueue.queue("lq", gpus=1)
    kueue.job("urgent", "lq", gpus=1, **{PRIORITY_LABEL: name})
    wl = wait_for("urgent workload", lambda: kueue.workload_of("urgent"))
    assert wl["spec"]["priority"] == 1000
    assert wl["spec"]["priorityClassRef"] == {
        "group": GROUP,
        "kind": "WorkloadPriorityClass",
        "name": name,
    }


async def test_admitted_workloads_keep_their_quota_across_a_restart(tmp_path: Any) -> None:
    config = KubesimConfig(data_dir=tmp_path / "data", store_dir=tmp_path / "store", kueue=True)
    base = f"/apis/{GROUP}/{VERSION}"

    async def workload_condition(http: aiohttp.ClientSession, job: str, type_: str) -> Any:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            async with http.get(f"{base}/namespaces/default/workloads") as r:
                for wl in (await r.json())["items"]:
                    if wl["metadata"]["ownerReferences"][0]["name"] != job:
                        continue
                    for c in (wl.get("status") or {}).get("conditions") or []:
                        if c["type"] == type_:
                            return c
            await asyncio.sleep(0.2)
        raise AssertionError(f"no {type_} condition on the workload of {job}")

    def job(name: str) -> dict[str, Any]:
        container = {"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"],
                     "resources": {"limits": {"nvidia.com/gpu": "1"}}}  # fmt: skip
        return {
            "metadata": {"name": name, "labels": {QUEUE_LABEL: "lq"}},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
        }

    async with KubeSim(config) as sim, aiohttp.ClientSession(sim.url) as http:
        await http.post(f"{base}/resourceflavors", json={"metadata": {"name": "gpu"}})
        quota = {"name": "nvidia.com/gpu", "nominalQuota": 1}
        await http.post(
            f"{base}/clusterqueues",
            json={
                "metadata": {"name": "cq"},
                "spec": {
                    "resourceGroups": [
                        {
                            "coveredResources": ["nvidia.com/gpu"],
                            "flavors": [{"name": "gpu", "resources": [quota]}],
                        }
                    ]
                },
            },  # fmt: skip
        )
        await http.post(
            f"{base}/namespaces/default/localqueues",
            json={"metadata": {"name": "lq"}, "spec": {"clusterQueue": "cq"}},
        )
        await http.post("/apis/batch/v1/namespaces/default/jobs", json=job("before"))
        assert (await workload_condition(http, "before", "Admitted"))["status"] == "True"
    async with KubeSim(config) as sim, aiohttp.ClientSession(sim.url) as http:
        await http.post("/apis/batch/v1/namespaces/default/jobs", json=job("after"))
        reserved = await workload_condition(http, "after", "QuotaReserved")
        assert reserved["status"] == "False"
        assert (await workload_condition(http, "before", "Admitted"))["status"] == "True"


def test_an_indexed_job_is_admitted_all_or_nothing(kueue: Kueue) -> None:
    # a multi-node job: 2 pods of 2 GPUs against 3 GPUs of quota; one pod would fit, the job not
    kueue.queue("lq", gpus=3)
    body = {
        "metadata": {"name": "ddp", "labels": {QUEUE_LABEL: "lq"}},
        "spec": {
            "completions": 2,
            "parallelism": 2,
            "completionMode": "Indexed",
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox:1.36",
                            "command": ["sleep", "60"],
                            "resources": {"limits": {"nvidia.com/gpu": "2"}},
                        }
                    ],
                }
            },
        },
    }
    kueue.batch.create_namespaced_job(kueue.ns, body)
    wl = wait_for(
        "a pending workload", lambda: (w := kueue.workload_of("ddp")) and w.get("status") and w
    )
    assert wl["spec"]["podSets"][0]["count"] == 2
    reserved = next(c for c in wl["status"]["conditions"] if c["type"] == "QuotaReserved")
    assert reserved["status"] == "False"
    assert kueue.batch.read_namespaced_job("ddp", kueue.ns).spec.suspend is True
    assert not kueue.core.list_namespaced_pod(
        kueue.ns, label_selector="batch.kubernetes.io/job-name=ddp"
    ).items
