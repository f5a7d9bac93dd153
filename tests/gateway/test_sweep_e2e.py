"""A parameter sweep end to end on the session platform: one Indexed Job, one index per
combination; each run's parameters, state, metrics, log and outputs apart; the results table
of ``gpulab jobs status --sort``; a failed run stops no other."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from gateway_testlib import NAMESPACE, command_job

pytestmark = [pytest.mark.e2e, pytest.mark.ceph]

# Each run reads its parameters, says them in its log, writes a file and its metrics.
TRAIN = (
    "import json, os, pathlib, sys\n"
    "p = json.loads(os.environ['GPULAB_PARAMETERS'])\n"
    "run = os.environ['GPULAB_RUN_INDEX']\n"
    'print(f\'run {run} lr={p["lr"]} batch={p["batch"]}\', flush=True)\n'
    "if p.get('fail_on') == [p['lr'], p['batch']]: sys.exit(3)\n"
    "out = pathlib.Path(os.environ['GPULAB_OUTPUT_DIR'])\n"
    "(out / 'model.txt').write_text(f'run {run}')\n"
    "loss = p['lr'] * p['batch']\n"
    "(out / 'result.json').write_text(json.dumps({'loss': loss, 'accuracy': 1 - loss}))\n"
)
GRID = {"lr": [0.1, 0.01], "batch": [1, 4]}


def _sweep(name: str, **extra: object) -> dict:
    return command_job(name, TRAIN, sweep=GRID, max_parallel=2, **extra)


@pytest.fixture(scope="module")
def finished_sweep(gw) -> dict:
    with gw.client("alice") as c:
        r = c.post("/jobs", json=_sweep("sweep4"))
        assert r.status_code == 201, r.text
    return gw.wait_state("alice", r.json()["id"], ("Succeeded", "Failed"), timeout=240)


def test_a_sweep_is_one_indexed_job_with_an_index_per_combination(gw, finished_sweep):
    job = gw.kubesim.get(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/{finished_sweep['id']}")
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 4, 2)
    assert spec["backoffLimitPerIndex"] == 0


def test_every_run_of_a_sweep_succeeds_with_its_parameters_and_metrics(finished_sweep):
    assert finished_sweep["state"] == "Succeeded", finished_sweep
    runs = finished_sweep["runs"]
    assert [r["parameters"] for r in runs] == [
        {"batch": 1, "lr": 0.1},
        {"batch": 1, "lr": 0.01},
        {"batch": 4, "lr": 0.1},
        {"batch": 4, "lr": 0.01},
    ]
    assert {r["state"] for r in runs} == {"Succeeded"}
    assert [r["metrics"]["loss"] for r in runs] == pytest.approx([0.1, 0.01, 0.4, 0.04])
    assert finished_sweep["upload"] == "ok"


def test_each_run_has_its_own_log_and_outputs(gw, finished_sweep):
    job_id = finished_sweep["id"]
    with gw.client("alice") as c:
        log = c.get(f"/jobs/{job_id}/logs", params={"run": 2}).text
        assert "run 2 lr=0.1 batch=4" in log and "run 0" not in log
        files = c.get(f"/jobs/{job_id}/outputs", params={"run": 3}).json()["items"]
        paths = {f["path"] for f in files}
        assert {"run-3/outputs/model.txt", "run-3/log.txt", "run-3/result.json"} <= paths
        assert all(p.startswith("run-3/") for p in paths)
        assert (
            c.get(f"/jobs/{job_id}/outputs", params={"run": 4}).json()["problems"][0]["field"]
            == "run"
        )


def test_gpulab_jobs_status_sorts_the_results_table(gw, finished_sweep):
    env = {
        **os.environ,
        "GPULAB_HUB_URL": gw.platform.hub_url,
        "GPULAB_TOKEN": gw.tokens["alice"],
        "COLUMNS": "200",
    }
    env.pop("GPULAB_GATEWAY_URL", None)
    env.pop("JUPYTERHUB_API_TOKEN", None)
    done = subprocess.run(
        [sys.executable, "-m", "gpulab.cli", "jobs", "status", finished_sweep["id"]]
        + ["--sort=-accuracy"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    table = done.stdout.split("\n\n", 1)[1].splitlines()
    assert table[0].split() == ["RUN", "STATE", "BATCH", "LR", "ACCURACY", "LOSS"]
    assert [line.split()[0] for line in table[1:]] == ["1", "3", "0", "2"]


def test_a_failed_run_stops_no_other_and_fails_the_sweep(gw):
    spec = _sweep("sweepfail", parameters={"fail_on": [0.1, 4]})
    with gw.client("alice") as c:
        r = c.post("/jobs", json=spec)
        assert r.status_code == 201, r.text
    done = gw.wait_state("alice", r.json()["id"], ("Succeeded", "Failed"), timeout=240)
    assert done["state"] == "Failed" and "some runs of the sweep failed" in done["message"]
    assert [r["state"] for r in done["runs"]] == ["Succeeded", "Succeeded", "Failed", "Succeeded"]
    assert done["runs"][2]["exit_code"] == 3
    assert done["runs"][3]["metrics"] == pytest.approx({"loss": 0.04, "accuracy": 0.96})
