"""The researcher's whole journey in headless Chromium, on the platform ``gpulab up`` runs.

alice (group vision) logs in; the spawn page offers only vision's profiles and images; she
starts a 1-GPU server and watches the progress page until JupyterLab opens; she writes a
notebook with a ``parameters`` cell, opens it, presses **Run as job** on the notebook's toolbar
and submits the notebook as a job with ``epochs=2`` from the dialog; the job turns Succeeded in
the GPU jobs sidebar by itself; the sidebar shows its log and downloads its outputs into her home;
the jobs page downloads the same output through the browser; she stops her server from the hub
home page. A screenshot of each step goes to test-artifacts/journey/.

The README's quick start describes exactly these steps: change both together.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gpulab.hub.policy import load_policy
from playwright.sync_api import expect

from tests.browser.lab_steps import open_run_dialog, submit_and_find_row

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.ceph]

USER = "alice"  # hub/demo/users.yaml: group vision
GROUP = "vision"
NOTEBOOK = "journey.ipynb"
JOB_NAME = "journey-train"
EPOCHS = 2
RESULT = f"trained for {EPOCHS} epochs\n"
SPAWN_TIMEOUT = 120_000  # ms: a server takes ~10-40 s to start on a 2-core machine
JOB_TIMEOUT = 150_000  # ms: papermill starts a kernel in the job's pod

# Records what the hub's progress page shows (progress bar value and event log) as it changes,
# from the first paint to the redirect, through an exposed function: the page reloads itself
# when the server is ready, so its DOM cannot be read afterwards.
PROGRESS_RECORDER = """
(() => {
  if (!location.pathname.includes('/hub/spawn-pending/')) return;
  const report = () => {
    const bar = document.getElementById('progress-bar');
    const events = Array.from(document.querySelectorAll('#progress-log .progress-log-event'))
      .map((e) => e.textContent.trim());
    window.gpulabProgress({progress: Number((bar && bar.getAttribute('aria-valuenow')) || 0),
                           events});
  };
  document.addEventListener('DOMContentLoaded', () => {
    const log = document.getElementById('progress-log');
    if (log) new MutationObserver(report).observe(log, {childList: true, subtree: true});
  });
})();
"""

# Runs in the page: PUT a notebook through the Jupyter contents API with the page's XSRF cookie.
PUT_NOTEBOOK = """
async ([url, notebook]) => {
  const cookie = document.cookie.split('; ').find((c) => c.startsWith('_xsrf='));
  const xsrf = cookie ? decodeURIComponent(cookie.slice('_xsrf='.length)) : '';
  const r = await fetch(url, {
    method: 'PUT', credentials: 'same-origin',
    headers: {'Content-Type': 'application/json', 'X-XSRFToken': xsrf},
    body: JSON.stringify({type: 'notebook', format: 'json', content: notebook}),
  });
  return [r.status, await r.text()];
}
"""

# GET through the same API: the single-user server wants the XSRF token on every API request
# authenticated by cookie, reads included.
GET_TEXT = """
async (url) => {
  const cookie = document.cookie.split('; ').find((c) => c.startsWith('_xsrf='));
  const xsrf = cookie ? decodeURIComponent(cookie.slice('_xsrf='.length)) : '';
  const r = await fetch(url, {credentials: 'same-origin', headers: {'X-XSRFToken': xsrf}});
  return [r.status, await r.text()];
}
"""


def training_notebook() -> dict[str, Any]:
    """A notebook papermill can parameterise: a ``parameters`` cell, then a cell that writes
    ``result.txt`` into the job's output dir (``outputs/`` when run by hand)."""

    def code(source: str, tags: list[str] | None = None) -> dict[str, Any]:
        metadata: dict[str, Any] = {"tags": tags} if tags else {}
        return {
            "cell_type": "code",
            "metadata": metadata,
            "source": source,
            "outputs": [],
            "execution_count": None,
        }

    return {
        "cells": [
            code("epochs = 1\n", tags=["parameters"]),
            code(
                "import os, pathlib\n"
                "out = pathlib.Path(os.environ.get('GPULAB_OUTPUT_DIR', 'outputs'))\n"
                "out.mkdir(parents=True, exist_ok=True)\n"
                "(out / 'result.txt').write_text(f'trained for {epochs} epochs\\n')\n"
                "print(f'trained for {epochs} epochs')\n"
            ),
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def vision_images(policy_path: Path) -> set[str]:
    """The catalogue images the policy allows for vision (the static catalogue)."""
    policy = load_policy(policy_path)
    entitlement = policy.entitlement(groups=[GROUP])
    assert entitlement is not None
    return {i.image for i in policy.catalogue.static if entitlement.image_allowed(i.image)}


def kube_pod(platform: Any, name: str) -> dict[str, Any] | None:
    with platform.kube_client() as kube:
        pods = kube.get("/api/v1/namespaces/default/pods").raise_for_status().json()["items"]
    return next((p for p in pods if p["metadata"]["name"] == name), None)


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    """Poll a state until it holds (not a timed assertion: the bound only ends a stuck test)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not the case after {timeout:.0f}s")
        time.sleep(0.5)


def test_researcher_journey(platform, context, login, shot, servers, hub_server) -> None:
    hub = platform.hub_url
    user_url = platform.user_url(USER).rstrip("/")  # alice's own origin
    servers.own(USER)  # no server before; stopped at teardown whatever happens
    progress: list[dict[str, Any]] = []

    def record_progress(snapshot: dict[str, Any]) -> None:
        progress.append(snapshot)

    context.expose_function("gpulabProgress", record_progress)
    context.add_init_script(PROGRESS_RECORDER)

    # 1. Log in through the hub's form.
    page = login(context, USER)
    shot(page, "researcher-logged-in")

    # 2. The spawn page: vision's profiles only, and only the images vision may use.
    page.goto(f"{hub}/hub/spawn")
    radios = page.locator("input[name=profile]")
    expect(radios).to_have_count(2)
    assert {radios.nth(i).get_attribute("value") for i in range(2)} == {"gpu", "cpu"}
    expect(page.locator("label[for=profile-item-gpu]")).to_contain_text("GPU notebook")
    expect(page.locator("label[for=profile-item-cpu]")).to_contain_text("CPU notebook")
    offered = set(
        page.locator("select[name$='--image'] option").evaluate_all(
            "options => options.map((o) => o.value)"
        )
    )
    assert offered == vision_images(platform.config.policy_path)
    assert all(i.startswith(("harbor.local/vision/", "harbor.local/shared/")) for i in offered)
    assert not any(i.startswith("harbor.local/nlp/") for i in offered)
    gpu_sizes = page.locator("#profile-option-gpu--gpus option:not([disabled])").evaluate_all(
        "options => options.map((o) => o.value)"
    )
    assert gpu_sizes == ["1", "2"]  # the profile's [1, 2, 4] capped by vision's per_server 2
    expect(page.locator("#profile-option-gpu--gpus-reasons")).to_contain_text(
        "4 GPUs: above your group's limit of 2 per server"
    )  # the capped size is shown, disabled, with the reason
    # Issue 7: free GPUs per type and the quota left, before the user chooses.
    expect(page.locator("#gpulab-availability")).to_contain_text("a100")
    expect(page.locator("#gpulab-availability")).to_contain_text("quota")
    shot(page, "researcher-spawn-page")

    # 3. Choose the GPU notebook with 1 GPU and start; the progress page advances to Lab.
    page.locator("#profile-item-gpu").check()
    page.locator("#profile-option-gpu--gpus").select_option("1")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(f"**/hub/spawn-pending/{USER}**")
    expect(page.locator("#progress-message")).not_to_be_empty()
    shot(page, "researcher-progress")
    page.wait_for_url(f"**/user/{USER}/lab**", timeout=SPAWN_TIMEOUT)
    expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=SPAWN_TIMEOUT)
    values = [p["progress"] for p in progress]
    assert len(set(values)) >= 2 and values == sorted(values), f"progress seen: {progress}"
    assert len(progress[-1]["events"]) >= 2, f"progress events seen: {progress}"
    model = hub_server(USER)
    assert model is not None and model["ready"]
    pod = kube_pod(platform, model["state"]["pod_name"])
    assert pod is not None
    limits = next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")["resources"]
    assert str(limits["limits"]["nvidia.com/gpu"]) == "1"
    shot(page, "researcher-jupyterlab")

    # 4. A notebook with a parameters cell, written through the contents API, opened in Lab.
    status, body = page.evaluate(
        PUT_NOTEBOOK, [f"/user/{USER}/api/contents/{NOTEBOOK}", training_notebook()]
    )
    assert status in (200, 201), body
    page.goto(f"{user_url}/lab/tree/{NOTEBOOK}")
    cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")
    expect(cells).to_have_count(2, timeout=60_000)
    expect(page.get_by_text(re.compile(r"Python 3.*\| Idle"))).to_be_visible(timeout=60_000)
    shot(page, "researcher-notebook")

    # 5. Run as job, on the notebook's toolbar (saving first if Lab holds unsaved edits): the
    # dialog starts from this notebook's parameters cell and this server's GPUs.
    form = open_run_dialog(page)
    epochs = form.get_by_role("textbox", name="Value of epochs")
    expect(epochs).to_have_value("1")
    expect(form.get_by_label("GPUs", exact=True)).to_have_value("1")
    shot(page, "researcher-run-dialog")

    # 6. Submit this notebook as a job with epochs=2.
    epochs.fill(str(EPOCHS))
    row = submit_and_find_row(page, form, JOB_NAME)
    sidebar = page.locator("#gpulab-jobs-sidebar")
    expect(row).to_contain_text(re.compile("Pending|Running|Succeeded"), timeout=60_000)
    job_id = row.get_attribute("data-id")
    assert job_id
    shot(page, "researcher-job-submitted")

    # 7. The state changes to Succeeded in the GPU jobs sidebar by itself.
    expect(row).to_contain_text("Succeeded", timeout=JOB_TIMEOUT)
    shot(page, "researcher-job-succeeded")

    # 8. Its log, in the sidebar.
    log = sidebar.locator(".gpulab-LogView-text")
    expect(log).to_contain_text(RESULT.strip(), timeout=60_000)
    expect(log).to_contain_text("exit code 0")
    shot(page, "researcher-job-log")

    # 9. The outputs: the sidebar downloads them into ~/outputs/<job id>/ ...
    sidebar.get_by_role("button", name=re.compile("^Download the outputs of")).click()
    expect(sidebar.get_by_text(f"Outputs downloaded into ~/outputs/{job_id}/")).to_be_visible(
        timeout=60_000
    )
    shot(page, "researcher-outputs-downloaded")
    status, text = page.evaluate(
        GET_TEXT,
        f"/user/{USER}/api/contents/outputs/{job_id}/outputs/result.txt?type=file&format=text",
    )
    assert status == 200, text
    assert json.loads(text)["content"] == RESULT

    # ... and the jobs page downloads the same output through the browser.
    page.goto(f"{user_url}/gpulab/jobs")
    page.locator(f'#jobs-table tr[data-id="{job_id}"]').click()
    link = page.get_by_role("link", name="outputs/result.txt")
    expect(link).to_be_visible(timeout=60_000)
    expect(page.locator("#log-view")).to_contain_text(RESULT.strip(), timeout=60_000)
    shot(page, "researcher-jobs-page")
    with page.expect_download() as download_info:
        link.click()
    downloaded = download_info.value.path()
    assert Path(downloaded).read_text() == RESULT

    # 10. Stop the server from the hub's home page.
    page.goto(f"{hub}/hub/home")
    # home.js binds the button's click handler after the load event; JupyterHub sets this
    # flag for tests once it has (a click before that did nothing once in CI).
    page.wait_for_function("() => window._jupyterhub_page_loaded === true")
    page.get_by_role("button", name="Stop My Server").click()
    expect(page.get_by_role("button", name="Start My Server")).to_be_visible(timeout=SPAWN_TIMEOUT)
    wait_for(f"{USER}'s server gone from the hub", lambda: hub_server(USER) is None, 90)
    pod_name = model["state"]["pod_name"]
    wait_for(f"pod {pod_name} gone", lambda: kube_pod(platform, pod_name) is None, 90)
    shot(page, "researcher-server-stopped")
