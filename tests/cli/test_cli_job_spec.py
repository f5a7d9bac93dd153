"""`gpulab jobs submit --notebook train.ipynb --gpus 1 -p epochs=3` makes the spec a file would."""

import pytest
from gpulab.extensions.cli.job_spec import SpecError, default_name, inline_spec


def test_flags_make_a_notebook_spec_with_typed_parameters():
    spec = inline_spec(
        notebook="work/train.ipynb",
        gpus=1,
        parameters=["epochs=3", "lr=0.01", "arch=resnet", "fast=true"],
    )
    assert spec == {
        "name": "train",
        "notebook": "work/train.ipynb",
        "gpus": 1,
        "parameters": {"epochs": 3, "lr": 0.01, "arch": "resnet", "fast": True},
    }


def test_a_quoted_number_stays_a_string():
    assert inline_spec(notebook="a.ipynb", parameters=['tag="3"'])["parameters"] == {"tag": "3"}


def test_flags_override_a_spec_file_and_merge_its_parameters():
    base = {
        "name": "train",
        "image": "img:1",
        "gpus": 2,
        "notebook": "t.ipynb",
        "parameters": {"epochs": 1, "lr": 0.1},
    }
    spec = inline_spec(base=base, gpus=1, parameters=["epochs=3"])
    assert spec["gpus"] == 1 and spec["image"] == "img:1"
    assert spec["parameters"] == {"epochs": 3, "lr": 0.1}


def test_a_command_is_split_like_a_shell_line():
    spec = inline_spec(command='python work/prep.py --out "my data"')
    assert spec["command"] == ["python", "work/prep.py", "--out", "my data"]
    assert spec["name"] == "prep"


def test_nothing_to_run_is_refused_naming_the_flags():
    with pytest.raises(SpecError, match="--notebook"):
        inline_spec(gpus=1)


def test_a_parameter_without_a_value_is_refused_with_an_example():
    with pytest.raises(SpecError, match="KEY=VALUE"):
        inline_spec(notebook="a.ipynb", parameters=["epochs"])


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ({"notebook": "work/Train Model.ipynb"}, "train-model"),
        ({"notebook": "2024.ipynb"}, "job-2024"),
        ({"command": ["bash", "-c", "true"]}, "job"),
    ],
)
def test_the_default_name_is_a_dns_label_from_what_runs(spec, name):
    assert default_name(spec) == name
