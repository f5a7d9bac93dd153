"""gpulab's JupyterLab extension in headless Chromium, on the platform ``gpulab up`` runs.

* Run as job: alice opens a notebook with a ``parameters`` cell, presses **Run as job** on the
  notebook toolbar; the dialog shows the detected parameter, she changes it; a refused spec
  (too many GPUs) shows the reason beside the field; she submits; the
  GPU jobs sidebar shows the job, its log streams lines while it runs, the job turns
  Succeeded, a notification says so and its "Open outputs" opens the executed notebook in Lab.
  No console errors; every control of the dialog and the sidebar labelled and reachable by
  keyboard.
* Idle cull: a user in no group (the e2e policy's default group: 20 s idle timeout, warning
  10 s before) gets the warning as a notification; "Keep my server" keeps the server past the
  time it would have been culled.

Screenshots of each step go to test-artifacts/journey/.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from tests.browser.lab_steps import (
    UNLABELLED_OR_UNREACHABLE,
    ConsoleErrors,
    get_json,
    notebook,
    open_lab_notebook,
    open_run_dialog,
    start_cpu_server,
    submit_and_find_row,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.ceph]

USER = "alice"  # group vision: idle rules far longer than the test
NOTEBOOK = "lab-train.ipynb"
JOB_NAME = "lab-train"
STEPS = 12
LAB_TIMEOUT = 60_000  # ms
JOB_TIMEOUT = 180_000  # ms: papermill starts a kernel in the job's pod

TRAINING = notebook(
    [
        ("steps = 3\n", ["parameters"]),
        (
            "import os, pathlib, time\n"
            "out = pathlib.Path(os.environ.get('GPULAB_OUTPUT_DIR', 'outputs'))\n"
            "out.mkdir(parents=True, exist_ok=True)\n"
            "for i in range(steps):\n"
            "    print(f'step {i + 1} of {steps}', flush=True)\n"
            "    time.sleep(1)\n"
            "(out / 'result.txt').write_text(f'trained for {steps} steps\\n')\n",
            [],
        ),
    ]
)


def test_run_as_job_from_the_toolbar_to_the_executed_notebook(
    platform, context, login, shot, servers
) -> None:
    servers.own(USER)
    errors = ConsoleErrors(context)
    start_cpu_server(platform, USER)
    page = open_lab_notebook(platform, context, login, USER, NOTEBOOK, TRAINING)
    # The status bar item: this server's GPUs (none: a CPU server) and the quota.
    expect(page.locator(".gpulab-StatusItem")).to_contain_text("quota", timeout=LAB_TIMEOUT)
    shot(page, "lab-notebook")

    # 1. Run as job, on the notebook's toolbar; saved first if the notebook has unsaved edits.
    form = open_run_dialog(page)
    value = form.get_by_role("textbox", name="Value of steps")
    expect(value).to_have_value("3")  # detected in the parameters cell
    expect(form.get_by_label("Image")).to_have_value(re.compile(r"scipy"))  # this server's
    assert page.evaluate(UNLABELLED_OR_UNREACHABLE, form.element_handle()) == []
    shot(page, "lab-run-dialog")
    value.fill(str(STEPS))

    # A refused spec: the dialog stays, the reason beside the field, the values kept.
    gpus = form.get_by_label("GPUs", exact=True)
    gpus.fill("9")  # vision's limit is 4 per job
    errors.expect(422)
    page.get_by_role("button", name="Submit job").click()
    expect(gpus).to_have_attribute("aria-invalid", "true")
    beside = page.locator(f"#{gpus.get_attribute('id')}-error")  # the field's own error slot
    expect(beside).to_contain_text("limit of 4 GPUs per job")
    assert gpus.get_attribute("id") + "-error" in (gpus.get_attribute("aria-describedby") or "")
    expect(value).to_have_value(str(STEPS))
    shot(page, "lab-run-dialog-field-error")
    gpus.fill("0")
    row = submit_and_find_row(page, form, JOB_NAME)

    # 2. The sidebar opens on the job; its log streams lines while it runs.
    sidebar = page.locator("#gpulab-jobs-sidebar")
    job_id = row.get_attribute("data-id")
    assert job_id
    log = sidebar.locator(".gpulab-LogView-text")
    expect(row).to_contain_text("Running", timeout=JOB_TIMEOUT)
    expect(log).to_contain_text(f"step 1 of {STEPS}", timeout=JOB_TIMEOUT)
    running = get_json(page, f"/user/{USER}/gpulab/api/jobs/{job_id}")
    assert running["state"] == "Running", running  # lines arrived before the end
    assert f"step {STEPS} of {STEPS}" not in log.inner_text()
    shot(page, "lab-sidebar-log-streaming")

    # 3. Succeeded in the sidebar; a notification with "Open outputs".
    expect(row).to_contain_text("Succeeded", timeout=JOB_TIMEOUT)
    expect(log).to_contain_text(f"step {STEPS} of {STEPS}", timeout=LAB_TIMEOUT)
    toast = page.locator(".jp-toastContainer, .Toastify").get_by_text(f"Job {JOB_NAME} succeeded")
    expect(toast).to_be_visible(timeout=LAB_TIMEOUT)
    expect(sidebar.get_by_role("button", name=re.compile("^Resubmit job"))).to_be_visible()
    expect(sidebar.get_by_role("button", name=re.compile("^Cancel job"))).to_have_count(0)
    assert page.evaluate(UNLABELLED_OR_UNREACHABLE, sidebar.element_handle()) == []
    shot(page, "lab-job-succeeded")

    # 4. "Open outputs": downloaded into ~/outputs/<id>/, the executed notebook opens in Lab.
    page.get_by_role("button", name="Open outputs", exact=True).click()
    executed = page.locator(".jp-NotebookPanel:visible")
    expect(page.locator(".lm-TabBar-tab.lm-mod-current", has_text="notebook.ipynb")).to_be_visible(
        timeout=LAB_TIMEOUT
    )
    expect(executed.locator(".jp-OutputArea-output").first).to_contain_text(
        f"step {STEPS} of {STEPS}", timeout=LAB_TIMEOUT
    )
    shot(page, "lab-executed-notebook")
    assert errors.errors == [], errors.errors


def test_idle_cull_warning_arrives_and_keep_my_server_prevents_the_cull(
    platform, context, login, shot, servers
) -> None:
    name = f"labidle-{uuid.uuid4().hex[:6]}"  # in no group: the default group's idle rules
    platform.api("POST", f"/hub/api/users/{name}")
    servers.own(name)
    errors = ConsoleErrors(context)
    start_cpu_server(platform, name)
    user_url = platform.user_url(name).rstrip("/")
    page = login(context, name)
    page.goto(f"{user_url}/lab")
    expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=LAB_TIMEOUT)

    keep = page.get_by_role("button", name="Keep my server")
    expect(keep).to_be_visible(timeout=LAB_TIMEOUT)
    warning = page.get_by_text(re.compile(r"will be stopped in \d"))
    expect(warning.first).to_be_visible()
    expect(page.locator(".gpulab-StatusItem")).to_contain_text("cull in")
    status = get_json(page, f"/user/{name}/gpulab/api/cull-status")["status"]
    cull_at = datetime.fromisoformat(status["cull_at"])
    shot(page, "lab-cull-warning")
    keep.first.click()
    expect(page.get_by_text(re.compile("Your server is kept for"))).to_be_visible()
    shot(page, "lab-server-kept")

    # Past the moment it would have been culled (and a few culler cycles more), still there.
    def past_cull_time() -> bool:
        now = datetime.now(UTC)
        assert platform.api("GET", f"/hub/api/users/{name}")["servers"].get(""), "culled"
        return (now - cull_at).total_seconds() > 3 * platform.config.cull_interval

    wait_for("the time of the cull gone by", past_cull_time, 120)
    kept = get_json(page, f"/user/{name}/gpulab/api/cull-status")["status"]
    assert kept["state"] in ("kept", "active", "idle"), kept
    assert errors.errors == [], errors.errors
