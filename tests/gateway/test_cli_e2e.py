"""`gpulab jobs` from a laptop: the real command line against the real gateway, hub and Ceph.

The CLI runs as a subprocess with only what a researcher has: the hub URL and an API token
from the hub's token page (``GPULAB_HUB_URL``, ``GPULAB_TOKEN``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.ceph]

TRAIN_SPEC = """\
# the simplest job a researcher writes
name: cli-train
image: harbor.local/shared/scipy:2024.10
command: [python, -c, "import os; print('epoch 1 done'); open(os.environ['GPULAB_OUTPUT_DIR'] + '/model.txt', 'w').write('weights')"]
"""


def gpulab(gw, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GPULAB_HUB_URL": gw.platform.hub_url,
        "GPULAB_TOKEN": gw.tokens["alice"] if token is None else token,
        "COLUMNS": "200",
    }
    env.pop("GPULAB_GATEWAY_URL", None)
    env.pop("JUPYTERHUB_API_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "gpulab.cli", "jobs", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture(scope="module")
def finished_job(gw, tmp_path_factory) -> dict:
    spec = tmp_path_factory.mktemp("cli") / "job.yaml"
    spec.write_text(TRAIN_SPEC)
    submitted = gpulab(gw, "--json", "submit", str(spec))
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    return gw.wait_state("alice", job["id"], ("Succeeded", "Failed"))


def test_cli_submits_a_yaml_spec_and_the_job_succeeds(finished_job):
    assert finished_job["state"] == "Succeeded", finished_job
    assert finished_job["owner"] == "alice"


def test_cli_lists_the_job_in_a_table_and_as_json(gw, finished_job):
    table = gpulab(gw, "list")
    assert table.returncode == 0, table.stderr
    assert finished_job["id"] in table.stdout and "Succeeded" in table.stdout
    as_json = json.loads(gpulab(gw, "--json", "list").stdout)
    assert finished_job["id"] in {j["id"] for j in as_json}


def test_cli_prints_the_log_after_the_job_ended(gw, finished_job):
    logs = gpulab(gw, "logs", finished_job["id"])
    assert logs.returncode == 0, logs.stderr
    assert "epoch 1 done" in logs.stdout


def test_cli_downloads_the_outputs_with_a_progress_bar(gw, finished_job, tmp_path):
    got = gpulab(gw, "outputs", "get", finished_job["id"], "-D", str(tmp_path))
    assert got.returncode == 0, got.stderr
    models = list(Path(tmp_path).rglob("model.txt"))
    assert [m.read_text() for m in models] == ["weights"]


def test_cli_shows_the_policy_refusal_with_the_field(gw, tmp_path):
    spec = tmp_path / "greedy.yaml"
    spec.write_text(TRAIN_SPEC.replace("name: cli-train", "name: greedy\ngpus: 16"))
    refused = gpulab(gw, "submit", str(spec))
    assert refused.returncode == 1
    assert "gpus" in refused.stderr


def test_another_user_cannot_see_the_job_from_the_cli(gw, finished_job):
    other = gpulab(gw, "status", finished_job["id"], token=gw.tokens["bob"])
    assert other.returncode == 1
    assert "404" in other.stderr


def test_cli_without_a_token_says_where_to_get_one(gw):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GPULAB_", "JUPYTERHUB_"))}
    env["GPULAB_HUB_URL"] = gw.platform.hub_url
    result = subprocess.run(
        [sys.executable, "-m", "gpulab.cli", "jobs", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "token page" in result.stderr
