"""The spawn page and the progress page explain themselves, in headless Chromium on the
platform ``gpulab up`` runs: a CPU-only user is told their group and whom to ask; a GPU size
above the group's cap says so; a user whose GPU quota is used up is told what holds it; a spawn
that waits for GPUs says so in researchers' words (the scheduler's text under "details"), and
its button says Cancel and cancels it. Each test uses a user of its own (made through the hub
API), so no other journey's server or quota is touched. Screenshots: test-artifacts/journey/.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from gpulab.hub.workload.security import CONTAINER_SECURITY_CONTEXT, POD_SECURITY_CONTEXT
from playwright.sync_api import expect

from tests.browser.conftest import through_proxy
from tests.gateway.gateway_testlib import command_job

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

NAMESPACE = "default"
CONTACT = "the gpulab admins (gpulab-admins@example.org)"  # tests/e2e/policy.yaml
DEADLINE = 60.0  # seconds for the hub's watch caches to see a change
CANCEL_DEADLINE = 90.0
WAIT_TIMEOUT = 90_000  # ms for the progress page to say the spawn waits for GPUs


def new_user(platform: Any, group: str | None) -> str:
    """A user of this test only (the local authenticator keeps groups set through the API)."""
    name = f"ex-{uuid.uuid4().hex[:6]}"
    platform.api("POST", f"/hub/api/users/{name}")
    if group:
        platform.api("POST", f"/hub/api/groups/{group}/users", {"users": [name]})
    return name


def until(what: str, check: Callable[[], Any], deadline: float = DEADLINE) -> Any:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"not within {deadline:.0f}s: {what}")


def kubectl(platform: Any, *args: str, input: str | None = None) -> str:
    env = {"KUBECONFIG": str(platform.kubeconfig), "PATH": "/usr/local/bin:/usr/bin:/bin"}
    result = subprocess.run(
        ["kubectl", *args], env=env, input=input, capture_output=True, text=True, timeout=60
    )
    return result.stdout


def pod_exists(platform: Any, name: str) -> bool:
    return bool(kubectl(platform, "get", "pod", "-n", NAMESPACE, name, "-o", "name").strip())


def spawn_page(context: Any, login: Any, name: str) -> Any:
    page = login(context, name)
    page.goto(page.url.split("/hub/")[0] + "/hub/spawn")
    return page


def gpu_filler(name: str, gpus: int) -> dict[str, Any]:
    """Someone else's GPU workload (not gpulab's: it takes GPUs, not anyone's quota)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"test": "gpu-filler"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["sleep", "3600"],
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                    "securityContext": CONTAINER_SECURITY_CONTEXT,
                }
            ],
            "securityContext": POD_SECURITY_CONTEXT,
        },
    }


@pytest.fixture
def full_cluster(platform: Any) -> Iterator[None]:
    """Every a100 GPU of the 2x4 test cluster taken by pods outside gpulab, removed at the end."""
    names = [f"filler-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    try:
        for name in names:
            kubectl(platform, "apply", "-f", "-", input=json.dumps(gpu_filler(name, 4)))
        yield
    finally:
        kubectl(platform, "delete", "pod", "-n", NAMESPACE, *names, "--wait=false")


def test_a_cpu_only_user_is_told_their_group_and_whom_to_ask(platform, context, login, shot):
    page = spawn_page(context, login, new_user(platform, None))
    notices = page.locator("#gpulab-notices")
    expect(notices).to_contain_text(
        f"Your group default gives you CPU notebooks only: no GPUs. To use GPUs, ask {CONTACT}."
    )
    shot(page, "explain-cpu-only-user")


def test_a_size_above_the_groups_cap_says_why(platform, context, login, shot):
    page = spawn_page(context, login, new_user(platform, "vision"))
    expect(page.locator('#profile-option-gpu--gpus option[value="4"]')).to_be_disabled()
    expect(page.locator("#profile-option-gpu--gpus-reasons")).to_contain_text(
        "4 GPUs: above your group's limit of 2 per server"
    )
    shot(page, "explain-size-above-cap")


@pytest.fixture
def holding_job(platform: Any) -> Iterator[tuple[str, str]]:
    """(user, job id): an nlp user (quota 2 GPUs) whose job long-train holds 2 GPUs;
    cancelled at the end."""
    if platform.s3 is None:
        pytest.fail("this test needs the Ceph S3 gateway (jobs): install Ceph (`./dev.sh test`)")
    name = new_user(platform, "nlp")
    url, headers = through_proxy(platform, platform.service_url("jobs-gateway") + "api/v1")
    headers = {**headers, "Authorization": f"token {platform.user_token(name)}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as gw:
        spec = command_job("long-train", "import time; time.sleep(900)", gpus=2)
        r = gw.post("/jobs", json=spec)
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        try:
            yield name, job_id
        finally:
            gw.delete(f"/jobs/{job_id}")


@pytest.mark.ceph
def test_a_user_over_quota_is_told_what_holds_it(platform, context, login, shot, holding_job):
    name, _ = holding_job
    page = login(context, name)
    spawn = page.url.split("/hub/")[0] + "/hub/spawn"

    def notice() -> bool:
        page.goto(spawn)
        return "your job long-train holds 2" in page.inner_text("body")

    until("the spawn page names the job holding the quota", notice)
    expect(page.locator("#gpulab-notices")).to_contain_text(
        "No GPU server can start now: you already use all 2 GPUs of your quota "
        "(your job long-train holds 2). Stop a server or a job to free GPUs."
    )
    expect(page.locator("#profile-item-gpu")).not_to_be_checked()  # nothing preselected
    expect(page.locator("#profile-item-cpu")).to_be_checked()  # that cannot start
    shot(page, "explain-over-quota")


@pytest.mark.ceph
def test_a_waiting_spawn_speaks_plainly_and_cancel_stops_it(
    platform, context, login, shot, servers, hub_server, full_cluster
):
    name = new_user(platform, "vision")
    servers.own(name)
    page = spawn_page(context, login, name)

    def waits() -> bool:
        page.goto(page.url)
        return "will wait for GPUs" in page.inner_text("#profile-option-gpu--gpus")

    until("the spawn page sees the full cluster", waits)
    shot(page, "explain-will-wait")
    page.locator("#profile-item-gpu").check()
    page.locator("#profile-option-gpu--gpus").select_option("1")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(f"**/hub/spawn-pending/{name}**")
    page.wait_for_function("window._jupyterhub_page_loaded === true")

    message = page.locator("#progress-message")
    expect(message).to_contain_text("waiting for a free A100 GPU", timeout=WAIT_TIMEOUT)
    expect(message).to_contain_text("ahead")
    summary = message.locator("details summary")
    expect(summary).to_have_text("details")
    expect(message.locator("details")).to_contain_text("Insufficient nvidia.com/gpu")
    expect(message.locator("details")).not_to_have_attribute("open", "")
    button = page.locator("#stop-server-btn")
    expect(button).to_have_text("Cancel")
    shot(page, "explain-waiting-spawn")

    button.click()
    until("the cancelled spawn is gone", lambda: hub_server(name) is None, CANCEL_DEADLINE)
    until("its pod is gone", lambda: not pod_exists(platform, f"jupyter-{name}"), CANCEL_DEADLINE)
    with contextlib.suppress(Exception):
        shot(page, "explain-cancelled")
