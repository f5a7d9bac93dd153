"""Under `-o json`, errors are one JSON document on stderr, with the same exit code."""

import json

import pytest
from gpulab.extensions.cli.globals import GlobalOptions
from gpulab.extensions.cli.output import emit_error

from gpulab.cli import main

pytestmark = pytest.mark.usefixtures("no_hub")


def test_a_configuration_error_is_json_on_stderr_with_exit_2(capsys):
    assert main(["jobs", "list", "-o", "json"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "gpulab login" in json.loads(err)["error"]


def test_the_same_error_is_text_without_json(capsys):
    assert main(["jobs", "list"]) == 2
    assert capsys.readouterr().err.startswith("error: where is the hub?")


def test_a_usage_error_is_json_under_o_json(capsys):
    assert main(["-o", "json", "jobs", "lst"]) == 2
    err = json.loads(capsys.readouterr().err)
    assert "invalid choice" in err["error"] and err["usage"].startswith("usage: gpulab jobs")


def test_a_refusal_carries_its_status_and_problems(capsys):
    problems = [{"field": "gpus", "message": "16 is more than 4", "allowed": "0-4"}]
    emit_error(GlobalOptions(output="json"), "invalid job spec", status=422, problems=problems)
    assert json.loads(capsys.readouterr().err) == {
        "error": "invalid job spec",
        "status": 422,
        "problems": problems,
    }


def test_submit_without_anything_to_run_is_a_usage_error(capsys):
    code = main(
        [
            "jobs",
            "submit",
            "--gpus",
            "1",
            "-o",
            "json",
            "--hub-url",
            "http://127.0.0.1:9",
            "--token",
            "t",
        ]
    )
    assert code == 2
    assert "--notebook" in json.loads(capsys.readouterr().err)["error"]


def test_a_spec_file_merged_with_flags_is_read_strictly(tmp_path, capsys):
    spec = tmp_path / "job.yaml"
    spec.write_text("name: a\nname: b\ncommand: [true]\n")
    code = main(
        [
            "jobs",
            "submit",
            str(spec),
            "--gpus",
            "1",
            "-o",
            "json",
            "--hub-url",
            "http://127.0.0.1:9",
            "--token",
            "t",
        ]
    )
    assert code == 2
    assert "job.yaml" in json.loads(capsys.readouterr().err)["error"]
