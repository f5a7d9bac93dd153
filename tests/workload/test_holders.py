"""What holds the GPUs, named: gpulab.hub.workload.holdings.gpu_holders and the one sentence
that names them (describe_holders), used by the spawn page and every quota refusal."""

from __future__ import annotations

import json
from typing import Any

from gpulab.hub.workload.holdings import Holder, count_usage, describe_holders, gpu_holders
from gpulab.hub.workload.labels import (
    GPUS_LABEL,
    GROUP_LABEL,
    JOB_ID_LABEL,
    KUBESPAWNER_SERVERNAME_ANNOTATION,
    MANAGED_BY_LABEL,
    OWNER_ANNOTATION,
    SPEC_ANNOTATION,
    USER_LABEL,
    USERNAME_ANNOTATION,
)


def obj(user: str, group: str, gpus: int, **extra: Any) -> dict[str, Any]:
    labels = {MANAGED_BY_LABEL: "gpulab", USER_LABEL: user, GROUP_LABEL: group,
              GPUS_LABEL: str(gpus), **extra.pop("labels", {})}  # fmt: skip
    return {"metadata": {"labels": labels, "annotations": extra.pop("annotations", {})},
            "spec": {}, "status": {"phase": "Running"}}  # fmt: skip


def server(user: str, gpus: int, group: str = "vision", name: str = "") -> dict[str, Any]:
    annotations = {USERNAME_ANNOTATION: user}
    if name:
        annotations[KUBESPAWNER_SERVERNAME_ANNOTATION] = name
    return obj(user, group, gpus, annotations=annotations)


def job(user: str, gpus: int, name: str, job_id: str, group: str = "vision") -> dict[str, Any]:
    return obj(
        user, group, gpus,
        labels={JOB_ID_LABEL: job_id},
        annotations={OWNER_ANNOTATION: user, SPEC_ANNOTATION: json.dumps({"name": name})},
    )  # fmt: skip


def test_servers_are_named_as_the_hub_names_them():
    pods = [server("alice", 1), server("alice", 2, name="big")]
    names = [h.name for h in gpu_holders(pods, user="alice", group="vision")]
    assert names == ["alice/big", "alice/"]


def test_a_job_is_named_by_the_name_its_owner_gave_it():
    (holder,) = gpu_holders([], [job("alice", 3, "long-train", "j-1")], user="alice", group="x")
    assert holder == Holder("job", "long-train", "alice", "alice", 3, "vision")


def test_other_users_count_only_within_the_quota_group():
    pods = [server("bob", 1), server("carol", 2, group="nlp")]
    holders = gpu_holders(pods, user="alice", group="vision")
    assert [h.owner for h in holders] == ["bob"]


def test_count_usage_keeps_the_holders_and_whom_they_were_counted_for():
    usage = count_usage([server("alice", 1)], [job("alice", 3, "long-train", "j-1")],
                        user="alice", group="vision")  # fmt: skip
    assert usage.counted_for == "alice"
    assert describe_holders(usage.holders, "alice") == (
        "your job long-train holds 3, your server alice/ holds 1"
    )


def test_the_users_own_holders_come_first_then_others_by_owner():
    holders = [
        Holder("job", "sweep", "bob", "bob", 4, "vision"),
        Holder("server", "alice/", "alice", "alice", 1, "vision"),
    ]
    assert (
        describe_holders(holders, "alice") == "your server alice/ holds 1, bob's job sweep holds 4"
    )


def test_a_long_list_names_the_first_and_sums_the_rest():
    holders = [Holder("job", f"j{i}", "bob", "bob", 1, "vision") for i in range(7)]
    assert describe_holders(holders, "alice", most=5).endswith(", 2 more hold 2")


def test_a_starting_holder_says_so():
    holder = Holder("server", "jupyter-alice", "alice", "alice", 1, "vision", starting=True)
    assert describe_holders([holder], "alice") == "your server jupyter-alice (starting) holds 1"


def test_nothing_held_is_an_empty_phrase():
    assert describe_holders([], "alice") == ""


def test_a_running_jobs_pod_is_named_by_its_jobs_name():
    pod = obj("alice", "vision", 2, labels={JOB_ID_LABEL: "j-7"})
    the_job = job("alice", 2, "long-train", "j-7")
    the_job["spec"] = {"template": {"spec": {}}}
    (holder,) = gpu_holders([pod], [the_job], user="alice", group="vision")
    assert holder.name == "long-train"
