"""JobSpec: the researcher's example, every field's rules, bounds on hostile documents, and a
property test: the parser only ever raises SpecError and never accepts a path outside the home."""

from __future__ import annotations

import json
import posixpath

import pytest
from gpulab.hub.jobs.spec import (
    MAX_SPEC_BYTES,
    FieldError,
    JobSpec,
    SpecError,
    errors_from_pydantic,
    normalise_relpath,
    parse_job_spec,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

SIMPLE = """\
name: train-resnet
command: [python, train.py, --epochs, "10"]
gpus: 1
"""


def problems(raw, content_type=None) -> list[FieldError]:
    with pytest.raises(SpecError) as info:
        parse_job_spec(raw, content_type)
    assert info.value.problems, "a SpecError always names at least one problem"
    for p in info.value.problems:
        assert isinstance(p, FieldError) and p.message and p.allowed
    return info.value.problems


def fields(raw, content_type=None) -> set[str]:
    return {p.field for p in problems(raw, content_type)}


def test_the_simplest_example_parses_with_defaults():
    spec = parse_job_spec(SIMPLE)
    assert spec.name == "train-resnet"
    assert spec.command == ["python", "train.py", "--epochs", "10"]
    assert spec.kind == "command"
    assert spec.gpus == 1 and spec.retries == 0 and spec.args == [] and spec.env == {}
    assert spec.output_dir is None and spec.output_dir_for("train-resnet-k3x7qa") == (
        "outputs/train-resnet/train-resnet-k3x7qa"
    )
    assert spec.image is None and spec.max_runtime is None and spec.datasets is None


def test_json_and_yaml_give_the_same_spec_and_to_json_round_trips():
    from_yaml = parse_job_spec(SIMPLE)
    from_json = parse_job_spec(json.dumps(from_yaml.to_json()), "application/json")
    assert from_json == from_yaml
    assert JobSpec.model_validate(from_yaml.to_json()) == from_yaml
    assert parse_job_spec(from_yaml.to_json()) == from_yaml  # already-parsed data


def test_a_notebook_job_with_every_field():
    spec = parse_job_spec(
        {
            "name": "sweep",
            "image": "harbor.example.org/vision/pytorch:2.4",
            "notebook": "work//exp/./train.ipynb",
            "parameters": {"lr": 0.01, "label": "é✓ 数据", "layers": [64, [32, 16]], "on": True},
            "env": {"WANDB_MODE": "offline", "_X1": "$(HOME) stays literal"},
            "gpus": 2,
            "gpu_type": "a100",
            "cpu": "4",
            "memory": "16Gi",
            "working_dir": "work/",
            "max_runtime": "1h30m",
            "retries": 2,
            "output_dir": "results/sweep/",
            "datasets": ["imagenet"],
            "shm_size": "2Gi",
        }
    )
    assert spec.kind == "notebook"
    assert spec.notebook == "work/exp/train.ipynb"
    assert spec.working_dir == "work" and spec.output_dir == "results/sweep"
    assert spec.max_runtime == 5400
    assert spec.parameters["label"] == "é✓ 数据"


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"name": "Train", "command": ["x"]}, "name"),
        ({"name": "a" * 41, "command": ["x"]}, "name"),
        ({"name": "-x", "command": ["x"]}, "name"),
        ({"name": "ünï", "command": ["x"]}, "name"),
        ({"name": "x; rm -rf /", "command": ["x"]}, "name"),
        ({"name": "x"}, "command"),
        ({"name": "x", "command": ["x"], "notebook": "a.ipynb"}, "command"),
        ({"name": "x", "command": []}, "command"),
        ({"name": "x", "command": [""]}, "command"),
        ({"name": "x", "command": "python train.py"}, "command"),
        ({"name": "x", "command": ["x", 3]}, "command[1]"),
        ({"name": "x", "notebook": "a.py"}, "notebook"),
        ({"name": "x", "notebook": "a.ipynb", "args": ["--x"]}, "args"),
        ({"name": "x", "command": ["x"], "parameters": {"a": 1}}, "parameters"),
        ({"name": "x", "notebook": "a.ipynb", "parameters": {"1a": 1}}, "parameters.1a"),
        ({"name": "x", "notebook": "a.ipynb", "parameters": {"lambda": 1}}, "parameters.lambda"),
        ({"name": "x", "notebook": "a.ipynb", "parameters": {"é": 1}}, "parameters.é"),
        ({"name": "x", "notebook": "a.ipynb", "parameters": {"a": {"b": 1}}}, "parameters.a"),
        ({"name": "x", "command": ["x"], "env": {"GPULAB_TOKEN": "x"}}, "env.GPULAB_TOKEN"),
        ({"name": "x", "command": ["x"], "env": {"kubernetes_x": "x"}}, "env.kubernetes_x"),
        ({"name": "x", "command": ["x"], "env": {"A-B": "x"}}, "env.A-B"),
        ({"name": "x", "command": ["x"], "env": {"A": 1}}, "env.A"),
        ({"name": "x", "command": ["x"], "gpus": -1}, "gpus"),
        ({"name": "x", "command": ["x"], "gpus": 65}, "gpus"),
        ({"name": "x", "command": ["x"], "gpus": True}, "gpus"),
        ({"name": "x", "command": ["x"], "gpus": "2"}, "gpus"),
        ({"name": "x", "command": ["x"], "gpus": 1.5}, "gpus"),
        ({"name": "x", "command": ["x"], "gpu_type": "a100"}, "gpu_type"),
        ({"name": "x", "command": ["x"], "cpu": "0"}, "cpu"),
        ({"name": "x", "command": ["x"], "cpu": "lots"}, "cpu"),
        ({"name": "x", "command": ["x"], "memory": "-1Gi"}, "memory"),
        ({"name": "x", "command": ["x"], "shm_size": "huge"}, "shm_size"),
        ({"name": "x", "command": ["x"], "max_runtime": "forever"}, "max_runtime"),
        ({"name": "x", "command": ["x"], "max_runtime": 0}, "max_runtime"),
        ({"name": "x", "command": ["x"], "retries": 101}, "retries"),
        ({"name": "x", "command": ["x"], "output_dir": "."}, "output_dir"),
        ({"name": "x", "command": ["x"], "output_dir": ".gpulab/x"}, "output_dir"),
        ({"name": "x", "command": ["x"], "working_dir": "/tmp"}, "working_dir"),
        ({"name": "x", "command": ["x"], "datasets": ["a", "a"]}, "datasets"),
        ({"name": "x", "command": ["x"], "datasets": ["Bad Name"]}, "datasets"),
        ({"name": "x", "command": ["x"], "image": "not an image"}, "image"),
        ({"name": "x", "command": ["x"], "image": "$(evil)"}, "image"),
        ({"name": "x", "command": ["x"], "unknown": 1}, "unknown"),
        ({"name": "x", "command": ["x"], "Name": "y"}, "Name"),
    ],
)
def test_each_bad_field_is_named_with_what_is_allowed(doc, field):
    found = problems(doc)
    assert field in {p.field for p in found}, found


def test_unknown_fields_list_the_known_ones():
    [p] = problems({"name": "x", "command": ["x"], "gpu": 1})
    assert p.field == "gpu" and "gpus" in p.allowed and "unknown field" in p.message


@pytest.mark.parametrize(
    "path",
    [
        "../x",
        "a/../../x",
        "a/..",
        "/etc/passwd",
        "~/x",
        "~root/x",
        "a\\..\\b",
        "a\x00b",
        "a\nb",
        "",
        "x" * 2000,
        "a/" + "b" * 300,
    ],
)
def test_paths_that_could_leave_the_home_are_refused(path):
    for field in ("output_dir", "working_dir"):
        assert field in fields({"name": "x", "command": ["x"], field: path})
    assert "notebook" in fields({"name": "x", "notebook": path + "/n.ipynb"})


def test_paths_are_normalised():
    assert normalise_relpath("a//b/./c/") == "a/b/c"
    assert normalise_relpath("./a") == "a"
    assert normalise_relpath(".", allow_root=True) == "."
    assert normalise_relpath("données/été") == "données/été"
    assert normalise_relpath("$(rm -rf ~);`x`") == "$(rm -rf ~);`x`"  # no shell: just a name
    spec = parse_job_spec({"name": "x", "command": ["x"], "working_dir": "./"})
    assert spec.working_dir is None


def test_shell_metacharacters_in_command_stay_plain_arguments():
    argv = ["python", "-c", "print(1); import os", "$(reboot)", "`id`", "a|b", "&&", ">x"]
    spec = parse_job_spec({"name": "x", "command": argv})
    assert spec.command == argv


def test_size_limits():
    assert "" in fields("name: x\ncommand: [" + ",".join(["a"] * 40000) + "]")  # > 64 KiB
    assert "command" in fields({"name": "x", "command": ["a"] * 257})
    assert "command[0]" in fields({"name": "x", "command": ["a" * 5000]})
    assert "env" in fields(
        {"name": "x", "command": ["x"], "env": {f"A{i}": "" for i in range(300)}}
    )
    big = {"name": "x", "command": ["x"], "env": {f"A{i}": "v" * 4000 for i in range(20)}}
    [p] = problems(big)
    assert p.field == "" and str(MAX_SPEC_BYTES) in p.allowed
    deep: object = 1
    for _ in range(50):
        deep = [deep]
    assert any(
        "deep" in p.message
        for p in problems({"name": "x", "notebook": "a.ipynb", "parameters": {"a": deep}})
    )
    assert problems("[" * 100_000)  # no RecursionError escapes
    assert problems("{" * 60_000)
    assert problems(b"\xff\xfe not utf-8")


def test_hostile_yaml_is_refused_not_expanded():
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
    bomb += "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    assert any("alias" in p.message for p in problems(bomb))
    assert problems("!!python/object/apply:os.system ['id']")
    assert problems("name: x\ncommand: !!binary aGVsbG8=")
    assert "max_runtime" in fields("name: x\ncommand: [x]\nmax_runtime: 2017-01-01\n")
    assert problems("- just\n- a list")
    assert problems("just a string")
    assert problems("? [a, b]\n: c")  # a non-string key
    assert problems('{"name": "x", "command": ["x"], "gpus": NaN}', "application/json")
    assert problems('{"name": "x", "command": ["x"], "gpus": ' + "9" * 5000 + "}")


def test_errors_from_pydantic_names_fields():
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate({"name": 1, "command": ["x"], "retries": -1})
    found = errors_from_pydantic(info.value)
    assert [p.field for p in found] == ["name", "retries"]
    assert all(p.allowed for p in found)
    assert found[0].as_dict().keys() == {"field", "message", "allowed", "code"}


def test_messages_do_not_echo_huge_values():
    [p] = problems({"name": "x" * 4000, "command": ["x"]})
    assert len(p.message) < 200


# ----------------------------------------------------------------------------- property test

HOME = "/home/jovyan"
FIELDS = [
    "name",
    "image",
    "command",
    "notebook",
    "parameters",
    "args",
    "env",
    "gpus",
    "gpu_type",
    "cpu",
    "memory",
    "working_dir",
    "max_runtime",
    "retries",
    "output_dir",
    "datasets",
    "shm_size",
]
path_parts = st.sampled_from(
    [
        "..",
        ".",
        "",
        "~",
        "/",
        "a",
        "b.ipynb",
        "é",
        "$(x)",
        ";rm",
        "\x00",
        "\\",
        " ",
        "outputs",
        ".gpulab",
    ]
)
hostile_paths = st.one_of(
    st.lists(path_parts, max_size=8).map("/".join),
    st.lists(path_parts, max_size=8).map("".join),
    st.text(max_size=40),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    hostile_paths,
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6), st.dictionaries(st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=30,
)
field_values = st.one_of(json_values, hostile_paths, st.lists(hostile_paths, max_size=4))
specs = st.dictionaries(
    st.one_of(st.sampled_from(FIELDS), st.text(max_size=10)), field_values, max_size=10
)


def _inside_home(path: str | None) -> bool:
    if path is None:
        return True
    full = posixpath.normpath(posixpath.join(HOME, path))
    return full.startswith(HOME + "/") and "\x00" not in path


def _check(result: JobSpec) -> None:
    assert _inside_home(result.output_dir) and result.output_dir != "."
    assert _inside_home(result.working_dir)
    assert _inside_home(result.notebook)
    assert result.name.isascii()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    doc=specs,
    base=st.sampled_from(
        [{}, {"name": "ok", "command": ["x"]}, {"name": "ok", "notebook": "n.ipynb"}]
    ),
)
def test_hostile_documents_only_ever_raise_spec_error(doc, base):
    try:
        spec = parse_job_spec({**base, **doc})
    except SpecError as exc:
        assert exc.problems
        return
    _check(spec)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.one_of(st.text(max_size=300), st.binary(max_size=300)),
    ctype=st.sampled_from([None, "application/json", "application/yaml"]),
)
def test_hostile_text_only_ever_raises_spec_error(text, ctype):
    try:
        spec = parse_job_spec(text, ctype)
    except SpecError:
        return
    _check(spec)


@settings(max_examples=300, deadline=None)
@given(path=hostile_paths, field=st.sampled_from(["output_dir", "working_dir", "notebook"]))
def test_no_accepted_path_leaves_the_home(path, field):
    doc = {"name": "ok", "command": ["x"], field: path}
    if field == "notebook":
        doc = {"name": "ok", field: path}
    try:
        spec = parse_job_spec(doc)
    except SpecError:
        return
    _check(spec)
