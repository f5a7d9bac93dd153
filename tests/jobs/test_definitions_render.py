"""Saved definitions, pure: what a user may send (every problem by field path) and the
CronJob the gateway makes of it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from gpulab.hub.jobs.definitions import HISTORY_LIMIT, parse_definition, render_cronjob
from gpulab.hub.jobs.spec import SpecError

SPEC = {"name": "train", "command": ["python", "train.py"]}


def body(**fields: Any) -> bytes:
    return json.dumps({"name": "nightly", "spec": SPEC, **fields}).encode()


def problems(raw: bytes) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        parse_definition(raw, "application/json")
    return {p.field: p.message for p in info.value.problems}


def test_a_schedule_and_zone_are_kept() -> None:
    d = parse_definition(body(schedule="0 2 * * *", timezone="Asia/Shanghai"))
    assert (d.name, d.schedule, d.timezone, d.concurrency_policy, d.paused) == (
        "nightly", "0 2 * * *", "Asia/Shanghai", "Forbid", False,
    )  # fmt: skip


def test_every_problem_is_named_by_its_field_path() -> None:
    raw = json.dumps(
        {
            "name": "Not A Label",
            "spec": {"name": "train", "command": "python x", "gpus": -1},
            "schedule": "61 * * * *",
            "timezone": "Mars/Olympus",
        }
    ).encode()
    assert set(problems(raw)) == {"name", "schedule", "timezone", "spec.command", "spec.gpus"}


@pytest.mark.parametrize("policy", ["Allow", "Sometimes"])
def test_only_forbid_and_replace_are_offered(policy: str) -> None:
    assert "concurrency_policy" in problems(body(concurrency_policy=policy))


def test_unknown_fields_are_refused() -> None:
    assert problems(body(owner="bob")) == {"owner": "unknown field"}


def job_manifest() -> dict[str, Any]:
    return {
        "metadata": {
            "name": "nightly-abcdef",
            "namespace": "gpulab",
            "labels": {
                "gpulab.io/user": "alice",
                "gpulab.io/group": "vision",
                "gpulab.io/job-id": "nightly-abcdef",
            },  # fmt: skip
            "annotations": {"gpulab.io/spec": "{}", "gpulab.io/owner": "alice"},
        },
        "spec": {
            "template": {
                "metadata": {"labels": {"gpulab.io/job-id": "nightly-abcdef"}},
                "spec": {
                    "containers": [
                        {"name": "job", "env": [{"name": "GPULAB_JOB_ID", "value": "x"}]}
                    ]
                },
            }
        },
    }


def test_the_cronjob_carries_the_definition_and_forbids_overlap_by_default() -> None:
    d = parse_definition(body(schedule="@daily"))
    cj = render_cronjob(job_manifest(), d, definition_id="nightly-abcdef", owner="alice")
    spec = cj["spec"]
    assert (spec["schedule"], spec["concurrencyPolicy"], spec["suspend"]) == (
        "@daily", "Forbid", False,
    )  # fmt: skip
    assert spec["successfulJobsHistoryLimit"] == spec["failedJobsHistoryLimit"] == HISTORY_LIMIT
    assert cj["metadata"]["labels"]["gpulab.io/definition-name"] == "nightly"
    assert spec["jobTemplate"]["metadata"]["labels"]["gpulab.io/definition"] == "nightly-abcdef"


def test_runs_wait_behind_the_credential_gate_and_take_their_own_job_id() -> None:
    d = parse_definition(body(schedule="@daily"))
    cj = render_cronjob(job_manifest(), d, definition_id="nightly-abcdef", owner="alice")
    pod = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert {"name": "gpulab.io/upload-credential"} in pod["schedulingGates"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["GPULAB_JOB_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['batch.kubernetes.io/job-name']"
    )


def test_a_definition_without_a_schedule_is_kept_suspended() -> None:
    cj = render_cronjob(
        job_manifest(), parse_definition(body()), definition_id="nightly-abcdef", owner="alice"
    )
    assert cj["spec"]["suspend"] is True
