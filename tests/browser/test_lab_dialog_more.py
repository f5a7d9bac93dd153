"""The Run as job dialog's image list and schedules, in headless Chromium on the platform.

* The image field offers the catalogue images alice may use that can run jobs (what the jobs
  gateway lists), this server's image filled in.
* "On a schedule" with a cron and a time zone saves a definition; the GPU jobs sidebar lists it
  (name, schedule, active) with its pause / run now / delete controls.
"""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.lab_steps import (
    UNLABELLED_OR_UNREACHABLE,
    get_json,
    notebook,
    open_lab_notebook,
    open_run_dialog,
    start_cpu_server,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.ceph]

USER = "alice"
LAB_TIMEOUT = 60_000  # ms
NOTEBOOK = notebook([("x = 1\n", ["parameters"]), ("print(x)\n", [])])


def open_lab_dialog(platform, context, login, servers, path: str):
    """alice's Lab on a fresh CPU server with the notebook ``path`` open, and its Run as job
    dialog's form."""
    servers.own(USER)
    start_cpu_server(platform, USER)
    page = open_lab_notebook(platform, context, login, USER, path, NOTEBOOK)
    return page, open_run_dialog(page)


def test_the_image_field_offers_the_allowed_images_that_can_run_jobs(
    platform, context, login, servers
) -> None:
    page, form = open_lab_dialog(platform, context, login, servers, "images-offered.ipynb")
    allowed = get_json(page, f"/user/{USER}/gpulab/api/images")["items"]
    runnable = {img["image"] for img in allowed if img["ready"]["jobs"]}
    assert runnable, allowed
    image = form.get_by_label("Image", exact=True)
    server_image = get_json(page, f"/user/{USER}/gpulab/api/lab/status")["server"]["image"]
    expect(image).to_have_value(server_image)
    list_id = image.get_attribute("list")
    assert list_id
    offered = page.locator(f"datalist#{list_id} option").evaluate_all(
        "options => options.map(o => o.value)"
    )
    assert set(offered) == runnable, (offered, allowed)
    if server_image in runnable:
        assert offered[0] == server_image, offered  # this server's first


def test_scheduling_a_notebook_saves_a_definition_the_sidebar_lists(
    platform, context, login, servers
) -> None:
    name = f"nightly-{uuid.uuid4().hex[:6]}"
    page, form = open_lab_dialog(platform, context, login, servers, f"{name}.ipynb")
    form.get_by_label("On a schedule").check()
    schedule = form.get_by_label("Schedule", exact=True)
    expect(schedule).to_be_visible()
    form.get_by_label("Name", exact=True).fill(name)
    form.get_by_label("GPUs", exact=True).fill("0")
    schedule.fill("0 2 * * *")
    form.get_by_label("Time zone", exact=True).fill("Asia/Shanghai")
    assert page.evaluate(UNLABELLED_OR_UNREACHABLE, form.element_handle()) == []
    page.get_by_role("button", name="Submit job").click()
    # Saved: the sidebar opens on the schedules (the dialog would come back on a refusal).
    row = page.locator(f"#gpulab-jobs-sidebar tr[data-definition='{name}']")
    refused = page.locator(".gpulab-RunForm-alert, .gpulab-RunForm-error:not(:empty)")
    expect(row.or_(refused).first).to_be_visible(timeout=LAB_TIMEOUT)
    assert not refused.count(), refused.all_inner_texts()
    expect(row).to_contain_text("0 2 * * * (Asia/Shanghai)")
    expect(row).to_contain_text("active")
    saved = get_json(page, f"/user/{USER}/gpulab/api/definitions")["items"]
    mine = [d for d in saved if d["name"] == name]
    assert mine and mine[0]["schedule"] == "0 2 * * *", saved
    assert mine[0]["timezone"] == "Asia/Shanghai" and mine[0]["paused"] is False, mine
    for control in (f"Pause schedule {name}", f"Run {name} now", f"Delete schedule {name}"):
        expect(row.get_by_role("button", name=control)).to_be_visible()

    # Leave no schedule behind: delete it from the sidebar.
    row.get_by_role("button", name=f"Delete schedule {name}").click()
    page.locator(".jp-Dialog").get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0, timeout=LAB_TIMEOUT)
