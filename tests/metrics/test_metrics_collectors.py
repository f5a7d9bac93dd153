"""The metrics gpulab computes at scrape time (jobs by state and group, GPUs allocated and
idle, the catalogue's age) and the labels a submit's answer is counted under."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gpulab.hub.catalogue import Catalogue, CatalogueError
from gpulab.hub.catalogue.metrics import CatalogueCollector
from gpulab.hub.culler.rules import Decision
from gpulab.hub.culler.service.cycle import ServerView
from gpulab.hub.culler.service.metrics import GpuCollector
from gpulab.hub.jobs.gateway.job_index import JobIndex, entry_of
from gpulab.hub.jobs.gateway.metrics import JobsCollector, submit_outcome
from gpulab.hub.metrics import exported_names, resource_of
from prometheus_client import REGISTRY, CollectorRegistry

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def samples(collector: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
    }


# --------------------------------------------------------------------------- jobs


def job(name: str, group: str, **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"gpulab.io/group": group}, **extra.pop("meta", {})},
        "spec": extra.pop("spec", {}),
        "status": extra.pop("status", {}),
    }


def pod(phase: str) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "status": {"phase": phase}}


def index_of(
    jobs: dict[str, dict[str, Any]], pods: dict[str, list[dict[str, Any]]] | None = None
) -> JobIndex:
    index = JobIndex()
    for job_id, body in jobs.items():
        index.put(entry_of(job_id, body, (pods or {}).get(job_id, [])))
    return index


def jobs_gauge(index: JobIndex, state: str, group: str) -> float:
    collector = JobsCollector(index.counts_by_group_and_state)
    return samples(collector)[("gpulab_jobs", (("group", group), ("state", state)))]


def test_jobs_are_counted_by_state_and_group_from_the_index() -> None:
    done = {"conditions": [{"type": "Complete", "status": "True"}]}
    index = index_of(
        {"a": job("a", "vision"), "b": job("b", "vision"), "c": job("c", "nlp", status=done)},
        pods={"a": [pod("Running")], "b": [pod("Running")]},
    )
    assert jobs_gauge(index, "running", "vision") == 2
    assert jobs_gauge(index, "succeeded", "nlp") == 1


def test_a_cancelled_job_counts_as_cancelled() -> None:
    stone = job("gone", "vision", meta={"annotations": {"gpulab.io/cancelled-at": "x"}})
    assert jobs_gauge(index_of({"gone": stone}), "cancelled", "vision") == 1


def test_every_state_of_a_seen_group_is_reported_zero_included() -> None:
    index = index_of({"a": job("a", "vision")})
    values = samples(JobsCollector(index.counts_by_group_and_state))
    states = {dict(labels)["state"] for (_, labels) in values}
    assert states == {"queued", "pending", "running", "succeeded", "failed", "cancelled"}
    assert jobs_gauge(index, "failed", "vision") == 0


def test_a_submits_answer_maps_to_its_outcome_and_reason() -> None:
    assert submit_outcome(201) == ("accepted", "new")
    assert submit_outcome(200) == ("accepted", "repeat")
    assert submit_outcome(429) == ("refused", "quota")
    assert submit_outcome(422) == ("refused", "invalid")
    assert submit_outcome(401) == ("refused", "auth")
    assert submit_outcome(503) == ("error", "unavailable")
    assert submit_outcome(500) == ("error", "internal")


# --------------------------------------------------------------------------- GPUs


def gpu_pod(
    user: str, gpus: int, group: str = "vision", gpu_type: str = "a100", *, job: str = ""
) -> dict[str, Any]:
    labels = {
        "gpulab.io/user": user,
        "gpulab.io/group": group,
        "gpulab.io/gpus": str(gpus),
        "gpulab.io/gpu-type": gpu_type,
    }
    if job:
        labels["gpulab.io/job-id"] = job
    return {
        "metadata": {
            "name": f"{user}-{job or 'server'}",
            "uid": f"uid-{user}-{job}",
            "labels": labels,
            "annotations": {"hub.jupyter.org/username": user},
        },
        "status": {"phase": "Running", "startTime": (NOW - timedelta(hours=1)).isoformat()},
    }


def view(user: str, state: str) -> ServerView:
    v = ServerView(user, "", ["vision"], NOW - timedelta(hours=1), 2)
    v.decision = Decision("keep" if state != "warned" else "warn", "", state=state)  # type: ignore[arg-type]
    return v


def test_gpus_allocated_are_summed_by_group_type_and_kind() -> None:
    pods = [gpu_pod("alice", 2), gpu_pod("bob", 1), gpu_pod("carol", 4, job="train-1")]
    values = samples(GpuCollector(lambda: pods, dict, now=lambda: NOW))
    key = (("gpu_type", "a100"), ("group", "vision"))
    assert values[("gpulab_gpus_allocated", (*key, ("kind", "server")))] == 3
    assert values[("gpulab_gpus_allocated", (*key, ("kind", "job")))] == 4


def test_gpus_of_servers_judged_idle_or_warned_count_as_idle() -> None:
    pods = [gpu_pod("alice", 2), gpu_pod("bob", 1), gpu_pod("dan", 1)]
    servers = {
        ("alice", ""): view("alice", "warned"),
        ("bob", ""): view("bob", "active"),
        ("dan", ""): view("dan", "idle"),
    }
    values = samples(GpuCollector(lambda: pods, lambda: servers, now=lambda: NOW))
    assert values[("gpulab_gpus_idle", (("gpu_type", "a100"), ("group", "vision")))] == 3


def test_a_pod_that_never_started_holds_no_gpus() -> None:
    pending = gpu_pod("alice", 2)
    pending["status"] = {"phase": "Pending"}
    values = samples(GpuCollector(lambda: [pending], dict, now=lambda: NOW))
    assert not [k for k in values if k[0] == "gpulab_gpus_allocated"]


# --------------------------------------------------------------------------- catalogue


class FlakySource:
    requests = 0

    def __init__(self) -> None:
        self.fail = False

    @property
    def description(self) -> str:
        return "flaky"

    async def fetch(self) -> list[Any]:
        if self.fail:
            raise CatalogueError("down", code="UNREACHABLE")
        return []


HarborSource = type("HarborSource", (FlakySource,), {})  # labelled as a Harbor source


async def test_the_catalogues_age_is_the_time_since_its_last_good_load() -> None:
    catalogue = Catalogue(HarborSource())
    assert await catalogue.refresh()
    collector = CatalogueCollector(clock=lambda: catalogue.stats.last_refresh + 42.0)
    collector.catalogues.add(catalogue)
    values = samples(collector)
    assert values[("gpulab_catalogue_refresh_age_seconds", (("source", "harbor"),))] == 42.0
    assert values[("gpulab_catalogue_images", (("source", "harbor"),))] == 0


async def test_a_failed_harbor_load_counts_as_a_harbor_error() -> None:
    source = HarborSource()
    catalogue = Catalogue(source)
    labels = {"source": "harbor", "error": "unreachable"}
    before = REGISTRY.get_sample_value("gpulab_catalogue_load_errors_total", labels) or 0.0
    source.fail = True
    assert not await catalogue.refresh()
    after = REGISTRY.get_sample_value("gpulab_catalogue_load_errors_total", labels)
    assert after == before + 1


# --------------------------------------------------------------------------- names


def test_every_exported_name_is_gpulab_snake_case_with_its_unit() -> None:
    names = exported_names()
    assert {"gpulab_jobs_submits_total", "gpulab_watch_cache_relists_total"} <= names
    for name in names:
        assert name.startswith("gpulab_") and name == name.lower(), name
    assert all(n.endswith(("_total", "_created")) for n in names if "_submits" in n)


def test_a_collection_path_names_its_resource() -> None:
    assert resource_of("/apis/batch/v1/namespaces/default/jobs") == "jobs"
    assert resource_of("/api/v1/nodes") == "nodes"
