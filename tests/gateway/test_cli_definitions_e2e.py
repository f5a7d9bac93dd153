"""`gpulab jobs define`, `definitions` and `validate` from a laptop against the real gateway:
the CLI as a subprocess with only the hub URL and a token."""

from __future__ import annotations

import json
import uuid

import pytest
from test_cli_e2e import gpulab

pytestmark = [pytest.mark.e2e, pytest.mark.ceph]

SPEC = """\
name: cli-nightly
image: harbor.local/shared/scipy:2024.10
command: [python, -c, "print('nightly')"]
"""


def test_define_list_show_pause_resume_run_now_delete(gw, tmp_path):
    spec = tmp_path / "job.yaml"
    spec.write_text(SPEC)
    name = f"cli-{uuid.uuid4().hex[:6]}"
    made = gpulab(gw, "define", name, str(spec), "--schedule", "0 2 * * *",
                  "--timezone", "Asia/Shanghai")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "0 2 * * * (Asia/Shanghai)" in made.stdout

    listed = gpulab(gw, "definitions", "list")
    assert listed.returncode == 0 and name in listed.stdout
    as_json = json.loads(gpulab(gw, "-o", "json", "definitions", "show", name).stdout)
    assert as_json["schedule"] == "0 2 * * *" and as_json["paused"] is False

    assert gpulab(gw, "definitions", "pause", name).returncode == 0
    shown = json.loads(gpulab(gw, "-o", "json", "definitions", "show", name).stdout)
    assert shown["paused"] is True
    assert gpulab(gw, "definitions", "resume", name).returncode == 0

    run = gpulab(gw, "-o", "json", "definitions", "run-now", name)
    assert run.returncode == 0, run.stderr
    job_id = json.loads(run.stdout)["id"]
    assert gw.wait_state("alice", job_id, ("Succeeded", "Failed"))["state"] == "Succeeded"

    assert gpulab(gw, "definitions", "delete", name).returncode == 0
    missing = gpulab(gw, "definitions", "show", name)
    assert missing.returncode == 1 and "404" in missing.stderr


def test_a_bad_schedule_is_refused_naming_the_field(gw, tmp_path):
    spec = tmp_path / "job.yaml"
    spec.write_text(SPEC)
    r = gpulab(gw, "define", "cli-bad", str(spec), "--schedule", "61 * * * *")
    assert r.returncode == 1
    assert "schedule:" in r.stderr


def test_validate_checks_the_policy_when_the_hub_answers(gw, tmp_path):
    spec = tmp_path / "big.yaml"
    spec.write_text(SPEC + "gpus: 64\n")
    r = gpulab(gw, "-o", "json", "validate", str(spec))
    assert r.returncode == 1, r.stderr
    value = json.loads(r.stdout)
    assert value["checked"] == "schema and policy"
    assert "gpus" in {p["field"] for p in value["problems"]}
    ok = tmp_path / "ok.yaml"
    ok.write_text(SPEC)
    good = gpulab(gw, "validate", str(ok))
    assert good.returncode == 0 and "valid (schema and policy)" in good.stdout
