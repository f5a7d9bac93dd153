"""Panel logic without a display: form state → job spec, parameters, paths, widget tree."""

from __future__ import annotations

import json
from pathlib import Path

import ipywidgets as w
import pytest
from gpulab.extensions.panel import (
    JobsPanel,
    PanelError,
    build_spec,
    cull_warning_html,
    current_notebook,
    jobs_table_html,
    output_destination,
    parse_parameters,
)


def test_parameters_are_typed_from_json_or_kept_as_text() -> None:
    rows = [("epochs", "10"), ("lr", "0.001"), ("name", "resnet"), ("flags", "[1, 2]"),
            ("", ""), ("ok", "true")]  # fmt: skip
    assert parse_parameters(rows) == {
        "epochs": 10, "lr": 0.001, "name": "resnet", "flags": [1, 2], "ok": True,
    }  # fmt: skip


@pytest.mark.parametrize("rows", [[("not ok", "1")], [("a", "1"), ("a", "2")], [("1x", "1")]])
def test_bad_parameter_rows_are_refused(rows) -> None:
    with pytest.raises(PanelError):
        parse_parameters(rows)


def test_notebook_spec() -> None:
    spec = build_spec(
        kind="notebook", name="train", path="work/train.ipynb", gpus=2,
        image="harbor.local/shared/pytorch:2.4", parameters=[("epochs", "3")],
    )  # fmt: skip
    assert spec == {
        "name": "train", "gpus": 2, "image": "harbor.local/shared/pytorch:2.4",
        "notebook": "work/train.ipynb", "parameters": {"epochs": 3},
    }  # fmt: skip


def test_script_spec_uses_exec_form() -> None:
    spec = build_spec(kind="script", name="s", path="train.py", args="--epochs\n10\n", gpus=0)
    assert spec == {"name": "s", "gpus": 0, "command": ["python", "train.py", "--epochs", "10"]}
    assert build_spec(kind="script", name="s", path="run.sh")["command"] == ["bash", "run.sh"]
    assert build_spec(kind="script", name="s", path="bin/tool")["command"] == ["./bin/tool"]


def test_absolute_paths_become_home_relative(tmp_path: Path) -> None:
    spec = build_spec(
        kind="notebook", name="n", path=str(tmp_path / "a/b.ipynb"), home=str(tmp_path)
    )
    assert spec["notebook"] == "a/b.ipynb"
    with pytest.raises(PanelError, match="not inside your home"):
        build_spec(kind="notebook", name="n", path="/etc/x.ipynb", home=str(tmp_path))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "notebook", "name": "", "path": "a.ipynb"},
        {"kind": "notebook", "name": "n", "path": ""},
        {"kind": "notebook", "name": "n", "path": "a.py"},
        {"kind": "docker", "name": "n", "path": "a.py"},
    ],
)
def test_incomplete_forms_are_refused(kwargs) -> None:
    with pytest.raises(PanelError):
        build_spec(**kwargs)


def test_current_notebook(tmp_path: Path) -> None:
    home = str(tmp_path)
    assert current_notebook({"JPY_SESSION_NAME": f"{home}/w/t.ipynb", "HOME": home}) == "w/t.ipynb"
    assert current_notebook({"JPY_SESSION_NAME": "w/t.ipynb", "HOME": home}) == "w/t.ipynb"
    assert current_notebook({"HOME": home}, {"__session__": f"{home}/x.ipynb"}) == "x.ipynb"
    assert current_notebook({"JPY_SESSION_NAME": "/elsewhere/t.ipynb", "HOME": home}) == ""
    assert current_notebook({"HOME": home}) == ""


def test_outputs_stay_in_their_folder(tmp_path: Path) -> None:
    dest = output_destination(tmp_path, "job-1", "models/m.pt")
    assert dest == tmp_path / "outputs" / "job-1" / "models" / "m.pt"
    for bad in ("../x", "../../etc/passwd", "/etc/passwd", "."):
        with pytest.raises(PanelError):
            output_destination(tmp_path, "job-1", bad)


def test_table_and_warning_escape_html() -> None:
    table = jobs_table_html([{"name": "<b>x</b>", "id": "j1", "state": "Running", "gpus": 1}])
    assert "&lt;b&gt;" in table and "Running" in table and "#2f6fdf" in table
    assert cull_warning_html({"state": "active"}) == ""
    warning = cull_warning_html({"state": "warned", "cull_at": "2030-01-01T00:00:00+00:00",
                                 "reason": "<idle>", "keeps_left": 2})  # fmt: skip
    assert "&lt;idle&gt;" in warning and "Keeps left: 2" in warning


class _NoCuller:
    configured = False

    def status(self):
        return None

    def keep(self):
        return False, "no culler"


def _walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


def test_panel_builds_its_widget_tree_and_form_gives_the_spec(tmp_path: Path) -> None:
    env = {
        "HOME": str(tmp_path),
        "GPULAB_IMAGE": "harbor.local/shared/pytorch:2.4",
        "GPULAB_GPUS": "1",
        "JPY_SESSION_NAME": str(tmp_path / "work" / "train.ipynb"),
    }
    panel = JobsPanel(client_factory=lambda: pytest.fail("no network in this test"),
                      culler=_NoCuller(), env=env)  # fmt: skip
    assert isinstance(panel.widget, w.VBox)
    widgets = list(_walk(panel.widget))
    buttons = {b.description for b in widgets if isinstance(b, w.Button)}
    assert {"Submit", "Refresh", "Follow log", "Cancel", "Download outputs",
            "Keep my server", "+ parameter"} <= buttons  # fmt: skip
    assert panel.image.value == "harbor.local/shared/pytorch:2.4"
    assert panel.gpus.value == 1
    assert panel.path.value == "work/train.ipynb"

    panel.name.value = "train"
    panel.add_parameter_row("epochs", "5")
    panel.add_parameter_row("lr", "0.01")
    assert panel.spec() == {
        "name": "train", "gpus": 1, "image": "harbor.local/shared/pytorch:2.4",
        "notebook": "work/train.ipynb", "parameters": {"epochs": 5, "lr": 0.01},
    }  # fmt: skip
    panel._remove_row(panel.param_rows.children[0])
    assert panel.spec()["parameters"] == {"lr": 0.01}

    panel.kind.value = "script"
    panel.path.value = "work/train.py"
    panel.args.value = "--fast"
    assert panel.spec()["command"] == ["python", "work/train.py", "--fast"]
    assert panel.param_rows.layout.display == "none"

    panel.show_jobs([{"id": "j1", "name": "train", "state": "Succeeded", "gpus": 1}])
    assert panel.job_select.options == (("train (j1) Succeeded", "j1"),)
    panel.show_cull({"state": "warned", "cull_at": "soon", "reason": "idle", "keeps_left": 1})
    assert panel.keep_button.layout.display is None and not panel.keep_button.disabled
    panel.show_cull({"state": "active"})
    assert panel.keep_button.layout.display == "none"
    json.dumps(panel.spec())  # the spec is plain JSON
    panel.close()


def test_jobs_panel_entry_point_builds_the_widget(monkeypatch, tmp_path: Path) -> None:
    """``jobs.panel()`` opens even when the gateway is unreachable, and says why."""
    from gpulab import jobs

    monkeypatch.setenv("GPULAB_GATEWAY_URL", "http://127.0.0.1:9/services/jobs-gateway/")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "t")
    monkeypatch.delenv("GPULAB_CULLER_URL", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    widget = jobs.panel(auto_refresh=None)
    assert isinstance(widget, w.VBox)
    texts = [x.value for x in _walk(widget) if isinstance(x, w.HTML)]
    assert any("could not list jobs" in t for t in texts)


def test_cancel_is_offered_only_for_jobs_that_still_run(tmp_path: Path) -> None:
    panel = JobsPanel(client_factory=lambda: pytest.fail("no network in this test"),
                      culler=_NoCuller(), env={"HOME": str(tmp_path)})  # fmt: skip
    jobs = [
        {"id": "train-aaaaaa", "name": "train", "state": "Running"},
        {"id": "done-bbbbbb", "name": "done", "state": "Succeeded"},
    ]
    panel.show_jobs(jobs)
    panel.job_select.value = "train-aaaaaa"
    assert panel.cancel_button.disabled is False
    panel.job_select.value = "done-bbbbbb"
    assert panel.cancel_button.disabled is True
