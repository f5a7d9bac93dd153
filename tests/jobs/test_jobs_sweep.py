"""Parameter sweeps, the pure parts: the spec's sweep (grid or list, bounds), its runs, the
Indexed Job it renders, quota counting every index that may run at once, the runs' states,
the runner's run folder and metrics, and the CLI's sorted results table."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import kubernetes_validate
import pytest
from gpulab.extensions.cli.runs_view import runs_table, sort_runs
from gpulab.hub.jobs.gateway.state import job_state
from gpulab.hub.jobs.gateway.sweep_runs import parse_indexes, run_states, runs_view
from gpulab.hub.jobs.manifest import render_job, upload_secret_name
from gpulab.hub.jobs.spec import SpecError, parse_job_spec
from gpulab.hub.jobs.sweep import MAX_SWEEP_RUNS
from gpulab.hub.jobs.validate import job_request
from gpulab.hub.workload.admission import GpuUsage, admit
from gpulab.hub.workload.holdings import gpu_holdings
from gpulab.hub.workload.labels import JOB_COMPLETION_INDEX_KEY, SWEEP_LABEL
from jobs_testlib import IMAGE

GRID = {"lr": [0.1, 0.01], "batch": [32, 64]}


def spec(**fields):
    return parse_job_spec(
        {"name": "sweep", "image": IMAGE, "command": ["python", "t.py"], **fields}
    )


def problems(**fields):
    with pytest.raises(SpecError) as info:
        spec(**fields)
    return {p.field: p.message for p in info.value.problems}


def test_a_grid_runs_every_combination_merged_over_the_parameters():
    s = spec(sweep=GRID, parameters={"epochs": 3, "lr": 1.0})
    assert s.runs == [
        {"epochs": 3, "lr": 0.1, "batch": 32},
        {"epochs": 3, "lr": 0.01, "batch": 32},
        {"epochs": 3, "lr": 0.1, "batch": 64},
        {"epochs": 3, "lr": 0.01, "batch": 64},
    ]


def test_a_list_of_parameter_sets_runs_each_as_written():
    s = spec(sweep=[{"lr": 0.1}, {"lr": 0.2, "warmup": True}])
    assert s.runs == [{"lr": 0.1}, {"lr": 0.2, "warmup": True}]


def test_parallelism_is_the_cap_or_every_run():
    assert spec(sweep=GRID).parallelism == 4
    assert spec(sweep=GRID, max_parallel=2).parallelism == 2
    assert spec(sweep=GRID, max_parallel=9).parallelism == 4
    assert spec().parallelism == 1 and spec().runs == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"sweep": {}}, "sweep"),
        ({"sweep": []}, "sweep"),
        ({"sweep": 3}, "sweep"),
        ({"sweep": {"lr": []}}, "sweep.lr"),
        ({"sweep": {"lr": 0.1}}, "sweep.lr"),
        ({"sweep": {"class": [1]}}, "sweep.class"),
        ({"sweep": {"lr": [{"a": 1}]}}, "sweep.lr[0]"),
        ({"sweep": [{}]}, "sweep[0]"),
        ({"sweep": [{"2x": 1}]}, "sweep[0].2x"),
        ({"sweep": {"a": list(range(9)), "b": list(range(9))}}, "sweep"),
        ({"max_parallel": 2}, "max_parallel"),
        ({"sweep": GRID, "max_parallel": 0}, "max_parallel"),
    ],
)
def test_a_bad_sweep_is_refused_naming_the_field(fields, field):
    assert field in problems(**fields)


def test_a_sweep_on_several_nodes_is_refused_naming_sweep():
    assert "sweep" in problems(sweep=GRID, nodes=2, gpus_per_node=1)


def test_at_most_the_fixed_number_of_runs():
    assert len(spec(sweep={"a": list(range(MAX_SWEEP_RUNS))}).runs) == MAX_SWEEP_RUNS
    assert "makes 65 runs" in problems(sweep=[{"a": i} for i in range(MAX_SWEEP_RUNS + 1)])["sweep"]


def test_parameters_go_with_a_command_only_in_a_sweep():
    assert "parameters" in problems(parameters={"lr": 1})
    assert spec(parameters={"lr": 1}, sweep={"batch": [1]}).runs == [{"lr": 1, "batch": 1}]


def test_a_sweep_renders_one_indexed_job_each_index_retried_on_its_own(policy, vision):
    s = spec(sweep=GRID, max_parallel=3, retries=2)
    job = render_job(
        s,
        owner="alice",
        job_id="sweep-abcdef",
        entitlement=vision,
        policy=policy,
        image=IMAGE,
        namespace="gpulab",
        upload_secret_name=upload_secret_name("sweep-abcdef"),
    )
    body = job["spec"]
    assert body["completionMode"] == "Indexed"
    assert (body["completions"], body["parallelism"], body["backoffLimitPerIndex"]) == (4, 3, 2)
    assert body["backoffLimit"] >= 4 * 3  # never the reason a sweep stops
    assert job["metadata"]["labels"][SWEEP_LABEL] == "true"
    assert body["template"]["metadata"]["labels"][SWEEP_LABEL] == "true"
    kubernetes_validate.validate(job, "1.31.0", strict=True)


def test_quota_counts_every_run_that_may_run_at_once(policy, vision):
    usage = GpuUsage(user=2, group=2)  # vision: 4 GPUs a user
    four = job_request(spec(gpus=1, sweep=GRID), vision, policy)
    [p] = admit(four, usage)
    assert p.field == "gpus" and p.code == "quota" and "4 more requested" in p.message
    assert admit(job_request(spec(gpus=1, sweep=GRID, max_parallel=2), vision, policy), usage) == []


def test_the_per_job_gpu_limit_applies_to_one_run(policy, vision):
    # vision may use 4 GPUs per job: each run asks 4, the four runs 16 at once (quota's concern)
    request = job_request(spec(gpus=4, sweep=GRID, max_parallel=1), vision, policy)
    assert admit(request, GpuUsage()) == []


def _job(parallelism=2, completions=4, succeeded=0, **status):
    labels = {
        "app.kubernetes.io/managed-by": "gpulab",
        "gpulab.io/job-id": "sweep-abcdef",
        "gpulab.io/user": "alice",
        "gpulab.io/group": "vision",
        "gpulab.io/gpus": "1",
        SWEEP_LABEL: "true",
    }
    return {
        "metadata": {"name": "sweep-abcdef", "labels": labels},
        "spec": {"parallelism": parallelism, "completions": completions, "template": {}},
        "status": {"succeeded": succeeded, **status},
    }


def _pod(index, phase="Running", stamp="2026-01-01T00:00:00Z"):
    job = _job()
    return {
        "metadata": {
            "name": f"sweep-abcdef-{index}-x",
            "labels": job["metadata"]["labels"],
            "annotations": {JOB_COMPLETION_INDEX_KEY: str(index)},
            "creationTimestamp": stamp,
        },
        "spec": {},
        "status": {"phase": phase},
    }


def test_a_running_sweep_holds_the_gpus_of_its_parallelism():
    assert gpu_holdings([], [_job()])[0] == {"alice": 2}
    assert gpu_holdings([_pod(0), _pod(1)], [_job()])[0] == {"alice": 2}
    assert gpu_holdings([_pod(3)], [_job(succeeded=3)])[0] == {"alice": 1}


def test_an_indexed_job_that_is_no_sweep_counts_once():
    job, pods = _job(), [_pod(0), _pod(1)]
    for obj in (job, *pods):
        del obj["metadata"]["labels"][SWEEP_LABEL]
    assert gpu_holdings(pods, [job])[0] == {"alice": 1}


def test_a_sweep_with_failed_runs_fails_as_a_sweep_not_as_a_rank():
    failed = {"type": "Failed", "status": "True", "reason": "FailedIndexes"}
    job = _job(conditions=[failed], failedIndexes="2")
    state, message = job_state(job, [_pod(2, phase="Failed")])
    assert (state, message) == ("Failed", "some runs of the sweep failed")


def test_index_lists_parse_as_the_job_status_writes_them():
    assert parse_indexes("0-2,5") == {0, 1, 2, 5}
    assert parse_indexes("x,3-1,7") == {7}
    assert parse_indexes(None) == set()


def test_each_run_has_its_state():
    job = _job(completedIndexes="0", failedIndexes="1")
    states = run_states(job, [_pod(2), _pod(3, "Pending")], 4, "Running")
    assert states == ["Succeeded", "Failed", "Running", "Pending"]
    assert run_states(job, [], 4, "Cancelled") == ["Succeeded", "Failed", "Cancelled", "Cancelled"]


def test_runs_carry_parameters_and_metrics_from_their_results():
    s = spec(sweep=[{"lr": 0.1}, {"lr": 0.2}])
    runs = runs_view(
        s.to_json(), _job(completedIndexes="0-1"), [], "Succeeded", {1: {"metrics": {"loss": 2}}}
    )
    assert [(r["index"], r["parameters"], r["metrics"]) for r in runs] == [
        (0, {"lr": 0.1}, {}),
        (1, {"lr": 0.2}, {"loss": 2}),
    ]


def test_the_results_table_sorts_by_a_metric_runs_without_it_last():
    runs = [
        {"index": 0, "state": "Succeeded", "parameters": {"lr": 1}, "metrics": {"loss": 0.5}},
        {"index": 1, "state": "Failed", "parameters": {"lr": 2}, "metrics": {}},
        {"index": 2, "state": "Succeeded", "parameters": {"lr": 3}, "metrics": {"loss": 0.1}},
    ]
    assert [r["index"] for r in sort_runs(runs, "loss")] == [2, 0, 1]
    assert [r["index"] for r in sort_runs(runs, "-loss")] == [0, 2, 1]
    assert [r["index"] for r in sort_runs(runs, "-lr")] == [2, 1, 0]
    with pytest.raises(ValueError, match="sort by one of"):
        sort_runs(runs, "accuracy")
    table = runs_table(sort_runs(runs, "loss"), 80).splitlines()
    assert table[0].split() == ["RUN", "STATE", "LR", "LOSS"]
    assert table[1].split() == ["2", "Succeeded", "3", "0.1"]


def _run_sweep(tmp_path, index, script):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    s = {"name": "sw", "command": ["python", "-c", script], "sweep": {"lr": [0.1, 0.2]}}
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPULAB_")}
    env.update(
        GPULAB_JOB_ID="sw-aaaaaa",
        GPULAB_JOB_SPEC=json.dumps(s),
        GPULAB_HOME=str(home),
        GPULAB_UPLOAD_DIR=str(tmp_path / "none"),
        JOB_COMPLETION_INDEX=str(index),
    )
    return subprocess.run(
        [sys.executable, "-m", "gpulab.extensions.runner.main"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


METRICS = (
    "import json, os, pathlib\n"
    "p = json.loads(os.environ['GPULAB_PARAMETERS'])\n"
    "out = pathlib.Path(os.environ['GPULAB_OUTPUT_DIR'])\n"
    "(out / 'result.json').write_text(json.dumps({'loss': p['lr'] * 2, 'junk': [1]}))\n"
    "print('run', os.environ['GPULAB_RUN_INDEX'])\n"
)


def test_the_runner_keeps_a_run_apart_and_records_its_metrics(tmp_path):
    done = _run_sweep(tmp_path, 1, METRICS)
    assert done.returncode == 0, done.stdout + done.stderr
    state = tmp_path / "home" / ".gpulab" / "jobs" / "sw-aaaaaa" / "run-1"
    result = json.loads((state / "result.json").read_text())
    assert result["run"] == 1 and result["parameters"] == {"lr": 0.2}
    assert result["metrics"] == {"loss": 0.4}  # numbers and text only
    assert result["output_dir"] == "outputs/sw/sw-aaaaaa/run-1"
    assert "run 1" in (state / "log.txt").read_text()


def test_the_runner_refuses_a_sweep_without_its_index(tmp_path):
    done = _run_sweep(tmp_path, 2, METRICS)
    assert done.returncode == 125 and "JOB_COMPLETION_INDEX" in done.stderr
