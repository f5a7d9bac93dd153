"""`gpulab jobs validate SPEC` without a hub: the schema check, every problem with its field
path, exit 1 on problems, 0 on none, 2 when the file cannot be read."""

from __future__ import annotations

import json

import pytest

from gpulab.cli import main

pytestmark = pytest.mark.usefixtures("no_hub")


BAD = "name: Train!\ncommand: python x.py\ngpus: -1\nbogus: 1\n"
GOOD = "name: train\ncommand: [python, x.py]\n"


def write(tmp_path, text: str):
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return str(path)


def test_every_problem_is_printed_with_its_field_path_and_exit_1(tmp_path, capsys):
    assert main(["jobs", "validate", write(tmp_path, BAD)]) == 1
    err = capsys.readouterr().err
    for field in ("name:", "command:", "gpus:", "bogus:"):
        assert any(line.startswith(field) for line in err.splitlines()), (field, err)
    assert "4 problem(s)" in err


def test_problems_as_json_on_stdout(tmp_path, capsys):
    assert main(["-o", "json", "jobs", "validate", write(tmp_path, BAD)]) == 1
    value = json.loads(capsys.readouterr().out)
    assert value["valid"] is False
    assert {p["field"] for p in value["problems"]} == {"name", "command", "gpus", "bogus"}


def test_a_valid_spec_exits_0_and_says_the_policy_was_not_checked(tmp_path, capsys):
    assert main(["jobs", "validate", write(tmp_path, GOOD)]) == 0
    out, err = capsys.readouterr()
    assert "valid (schema)" in out
    assert "policy not checked" in err


def test_offline_checks_the_schema_only(tmp_path, capsys):
    assert main(["-o", "json", "jobs", "validate", "--offline", write(tmp_path, GOOD)]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "valid": True,
        "checked": "schema",
        "problems": [],
    }


def test_a_missing_file_exits_2(tmp_path, capsys):
    assert main(["jobs", "validate", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
