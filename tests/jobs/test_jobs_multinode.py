"""Multi-node jobs without a cluster: the spec's nodes / gpus_per_node / outputs_from, the
policy's max_nodes, N x G counted by per_job and quota, the Indexed Job and its headless
Service; hostile values (hypothesis) give field errors, never a crash, and no Job."""

from __future__ import annotations

import kubernetes_validate
from gpulab.hub.jobs.gateway.state import job_view
from gpulab.hub.jobs.manifest import render_job, render_rank_service, upload_secret_name
from gpulab.hub.jobs.spec import SpecError, parse_job_spec
from gpulab.hub.jobs.validate import job_request
from gpulab.hub.usage.recorder import _gpus as pod_gpus
from gpulab.hub.workload.admission import GpuUsage, admit
from gpulab.hub.workload.holdings import count_usage
from gpulab.hub.workload.labels import GPUS_LABEL, NODES_LABEL
from hypothesis import given, settings
from hypothesis import strategies as st
from jobs_testlib import IMAGE

JOB_ID = "ddp-abcdef"


def spec(**fields):
    return parse_job_spec({"name": "ddp", "image": IMAGE, "command": ["python", "t.py"], **fields})


def problems(s, ent, policy, usage=None):
    return {p.field: p for p in admit(job_request(s, ent, policy), usage or GpuUsage())}


def render(s, ent, policy):
    return render_job(
        s,
        owner="alice",
        job_id=JOB_ID,
        entitlement=ent,
        policy=policy,
        image=IMAGE,
        namespace="gpulab",
        upload_secret_name=upload_secret_name(JOB_ID),
    )


def env_of(job):
    [c] = job["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


def test_nodes_and_gpus_per_node_make_the_job_total():
    s = spec(nodes=2, gpus_per_node=2)
    assert (s.nodes, s.node_gpus, s.total_gpus, s.multi_node) == (2, 2, 4, True)
    assert spec(gpus=3).total_gpus == 3 and "nodes" not in spec(gpus=3).to_json()


def test_several_nodes_take_gpus_per_node_not_gpus():
    try:
        spec(nodes=2, gpus=2)
    except SpecError as exc:
        assert [p.field for p in exc.problems] == ["gpus"]
    else:
        raise AssertionError("nodes with gpus was accepted")


def test_a_multi_node_job_has_no_retries():
    try:
        spec(nodes=2, retries=1)
    except SpecError as exc:
        assert [p.field for p in exc.problems] == ["retries"]
    else:
        raise AssertionError("retries on several nodes were accepted")


def test_a_notebook_job_runs_on_one_node():
    try:
        parse_job_spec({"name": "nb", "notebook": "a.ipynb", "nodes": 2})
    except SpecError as exc:
        assert [p.field for p in exc.problems] == ["nodes"]
    else:
        raise AssertionError("a notebook on several nodes was accepted")


def test_per_job_limits_every_node_together(policy, vision):
    assert problems(spec(nodes=2, gpus_per_node=2), vision, policy) == {}
    p = problems(spec(nodes=2, gpus_per_node=4), vision, policy)["gpus_per_node"]
    assert p.code == "policy" and "8 (2 nodes × 4)" in p.message and "4 GPUs per job" in p.message


def test_max_nodes_is_per_group(policy, vision, default_ent):
    assert problems(spec(nodes=5), vision, policy)["nodes"].allowed == "at most 4"
    assert problems(spec(nodes=2), default_ent, policy)["nodes"].allowed == "at most 1"


def test_quota_counts_every_rank(policy, vision):
    usage = GpuUsage(user=2, group=2)
    p = problems(spec(nodes=2, gpus_per_node=2), vision, policy, usage)["gpus"]
    assert p.code == "quota" and "4 more requested" in p.message


def test_the_job_is_indexed_with_one_pod_per_rank(policy, vision):
    job = render(spec(nodes=2, gpus_per_node=2), vision, policy)
    kubernetes_validate.validate(job, "1.31.0", strict=True)
    js = job["spec"]
    assert (js["completionMode"], js["completions"], js["parallelism"]) == ("Indexed", 2, 2)
    assert (js["backoffLimitPerIndex"], js["maxFailedIndexes"]) == (0, 0)
    assert job["metadata"]["labels"][GPUS_LABEL] == "4"
    assert job["metadata"]["labels"][NODES_LABEL] == "2"
    pod = js["template"]["spec"]
    assert pod["subdomain"] == JOB_ID
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    env = env_of(job)
    assert env["MASTER_ADDR"] == f"{JOB_ID}-0.{JOB_ID}"
    assert (env["WORLD_SIZE"], env["LOCAL_WORLD_SIZE"], env["GPULAB_GPUS"]) == ("2", "2", "2")
    index = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    for name in ("RANK", "NODE_RANK", "GPULAB_RANK"):
        assert env[name] == {"fieldRef": {"fieldPath": index}}


def test_the_rank_service_is_headless_and_owned_by_the_job(policy, vision):
    job = render(spec(nodes=2), vision, policy)
    job["metadata"]["uid"] = "uid-1"
    svc = render_rank_service(job)
    kubernetes_validate.validate(svc, "1.31.0", strict=True)
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"]
    assert svc["spec"]["selector"] == {"gpulab.io/job-id": JOB_ID}
    assert svc["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_a_job_id_starting_with_a_digit_gets_a_service_name_with_a_letter(policy, vision):
    job = render(spec(nodes=2), vision, policy)
    job["metadata"].update(name="1ddp-abcdef", uid="uid-1")
    assert render_rank_service(job)["metadata"]["name"] == "job-1ddp-abcdef"


def test_holdings_count_a_multi_node_job_once_with_every_rank(policy, vision):
    job = render(spec(nodes=3, gpus_per_node=1), vision, policy)
    usage = count_usage([], [job], user="alice", group="vision")
    one_pod_cpu = 1000  # the gpu profile's guarantee, 1 CPU, per rank
    assert (usage.user, usage.group_cpu_millis) == (3, 3 * one_pod_cpu)


HOSTILE = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=True)
    | st.text(max_size=8)
    | st.lists(st.integers(), max_size=2)
)


@settings(max_examples=300, deadline=None)
@given(
    nodes=HOSTILE | st.integers(0, 70),
    per_node=HOSTILE | st.integers(0, 8),
    gpus=st.none() | st.integers(0, 8) | HOSTILE,
    retries=st.none() | st.integers(0, 3),
    outputs_from=st.none() | st.sampled_from(["rank0", "all", "some", ""]) | HOSTILE,
)
def test_hostile_multi_node_fields_are_refused_by_field_or_counted_in_full(
    policy, vision, nodes, per_node, gpus, retries, outputs_from
):
    doc = {"name": "ddp", "image": IMAGE, "command": ["true"]}
    for key, value in (
        ("nodes", nodes),
        ("gpus_per_node", per_node),
        ("gpus", gpus),
        ("retries", retries),
        ("outputs_from", outputs_from),
    ):
        if value is not None:
            doc[key] = value
    try:
        s = parse_job_spec(doc)
    except SpecError as exc:
        assert exc.problems and all(p.field is not None for p in exc.problems)
        return  # no spec, so no Job
    request = job_request(s, vision, policy)
    assert request.gpus == s.nodes * s.node_gpus and request.nodes == s.nodes
    found = admit(request, GpuUsage())
    if found:
        assert {p.field for p in found} <= {"gpus", "gpus_per_node", "nodes", "retries"}
        return  # refused: the gateway makes no Job
    assert s.nodes <= vision.max_job_nodes and request.gpus <= vision.gpu_per_job
    job = render(s, vision, policy)
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == s.nodes
    assert int(job["metadata"]["labels"][GPUS_LABEL]) == s.total_gpus
    usage = count_usage([], [job], user="alice", group="vision")
    assert usage.user == s.total_gpus


def _rank_pod(rank: int, phase: str, exit_code: int | None) -> dict:
    state = {"terminated": {"exitCode": exit_code}} if exit_code is not None else {"running": {}}
    return {
        "metadata": {
            "name": f"{JOB_ID}-{rank}-x",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "annotations": {"batch.kubernetes.io/job-completion-index": str(rank)},
        },
        "status": {"phase": phase, "containerStatuses": [{"name": "job", "state": state}]},
    }


def _two_node_job(status: dict) -> dict:
    return {
        "metadata": {"name": JOB_ID, "labels": {NODES_LABEL: "2", GPUS_LABEL: "0"}},
        "spec": {},
        "status": status,
    }


def test_a_failed_rank_is_named_in_the_jobs_message():
    failed = {"type": "Failed", "status": "True", "reason": "MaxFailedIndexesExceeded"}
    job = _two_node_job({"failedIndexes": "1", "conditions": [failed]})
    pods = [_rank_pod(0, "Failed", 143), _rank_pod(1, "Failed", 3)]
    view = job_view(job, pods)
    assert (view["state"], view["exit_code"]) == ("Failed", 3)
    assert view["message"] == "rank 1 of 2 failed with exit code 3; the job was stopped"


def test_a_job_runs_once_every_rank_runs():
    job = _two_node_job({})
    one = job_view(job, [_rank_pod(0, "Running", None)])
    assert (one["state"], one["message"]) == ("Running", "1 of 2 ranks running")
    both = job_view(job, [_rank_pod(0, "Running", None), _rank_pod(1, "Running", None)])
    assert (both["state"], both["message"]) == ("Running", "")
    assert [r["rank"] for r in both["ranks"]] == [0, 1]


def test_usage_charges_each_rank_its_share_of_the_gpus():
    labels = {GPUS_LABEL: "8", NODES_LABEL: "2"}
    assert pod_gpus({"spec": {}}, labels) == 4
