"""gpulab's JupyterLab extension on a plain ``jupyter server`` (JupyterLab and gpulab's server
extension, no platform):

* the "Run as job" button never runs a stale file: with unsaved edits in the notebook, it
  offers to save first, and after "Save and run" the dialog (and so the job) has what the
  researcher sees;
* the file browser's context menu runs a script as a job (its arguments, one a line)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import VIEWPORT
from tests.browser.lab_steps import notebook
from tests.extension.jupyter_testlib import JupyterServer

pytestmark = [pytest.mark.browser]

NOTEBOOK = "train.ipynb"
SCRIPT = "prepare.py"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    root = tmp_path_factory.mktemp("lab-save-first") / "home"
    root.mkdir()
    (root / NOTEBOOK).write_text(json.dumps(notebook([("epochs = 1\n", ["parameters"])])))
    (root / "work").mkdir()
    (root / "work" / SCRIPT).write_text("import sys\nprint(sys.argv)\n")
    env = {"HOME": str(root), "GPULAB_GPUS": "0", "GPULAB_IMAGE": "harbor.local/shared/x:1"}
    for key in ("GPULAB_GATEWAY_URL", "GPULAB_CULLER_URL", "JUPYTERHUB_API_TOKEN"):
        env[key] = ""
    server = JupyterServer(root, env).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(browser, lab) -> Iterator[Any]:
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(60_000)
    try:
        yield page
    finally:
        page.close()


def test_unsaved_edits_are_saved_before_the_job_is_built(page, lab, shot) -> None:
    page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}?token={lab.token}")
    editor = page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first
    expect(editor).to_contain_text("epochs = 1", timeout=60_000)
    editor.click()
    page.keyboard.press("End")
    page.keyboard.press("Backspace")
    page.keyboard.type("5")
    expect(editor).to_contain_text("epochs = 5")

    page.get_by_role("button", name="Run as job").click()
    expect(page.get_by_text("has unsaved changes")).to_be_visible()
    shot(page, "lab-save-first")
    page.get_by_role("button", name="Save and run").click()

    value = page.get_by_role("textbox", name="Value of epochs")
    expect(value).to_have_value("5")  # read from the file just saved
    saved = json.loads(Path(lab.root, NOTEBOOK).read_text())
    assert "".join(saved["cells"][0]["source"]).strip() == "epochs = 5"
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator(".gpulab-RunForm")).to_have_count(0)


def test_the_file_browser_runs_a_script_as_a_job(page, lab, shot) -> None:
    page.goto(f"{lab.url}/lab/tree/work?token={lab.token}")
    item = page.locator(f'.jp-DirListing-item[data-file-type="python"]:has-text("{SCRIPT}")')
    expect(item).to_be_visible(timeout=60_000)
    item.click(button="right")
    page.locator(".lm-Menu-item", has_text="Run as Job…").click()
    form = page.locator(".gpulab-RunForm")
    expect(form).to_contain_text(f"Run the script work/{SCRIPT} as a batch job.")
    expect(form.get_by_label("Name", exact=True)).to_have_value("prepare")
    expect(form.get_by_label("Arguments")).to_be_visible()
    shot(page, "lab-run-script-dialog")
    page.get_by_role("button", name="Cancel").click()
