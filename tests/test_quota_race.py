"""A server start and a job submit at the same instant never hold more than the user's GPU
quota: the spawner (in the hub) and the jobs gateway (its own process) check and reserve
through one ledger in the API server (gpulab.hub.workload.quota_ledger).

On the session platform (tests/conftest.py): a user of the ``nlp`` group (2 GPUs per user in
tests/e2e/policy.yaml) holds 1 GPU with a running job; then, again and again, a 1-GPU server
and a 1-GPU job are asked for at once from two threads. At most one of them may be admitted,
and the GPUs the user holds (counted from kubesim) never exceed 2.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.error
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from gpulab.hub.names import escape_username
from gpulab.hub.workload.holdings import count_usage
from gpulab.hub.workload.labels import MANAGED_SELECTOR, USER_LABEL

from tests.gateway.gateway_testlib import API, NAMESPACE, wait_gateway

pytestmark = [pytest.mark.e2e]

QUOTA = 2  # the nlp group's quota_user
ROUNDS = 10
IMAGE = "harbor.local/nlp/pytorch:2.4-cuda12.4"
SERVER = {"profile": "gpu", "gpus": "1", "image": IMAGE}
DEADLINE = 180.0

T = TypeVar("T")


def job(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": IMAGE,
        "gpus": 1,
        "command": ["python", "-c", "import time; time.sleep(900)"],
    }


def poll(value: Callable[[], T], what: str, limit: float = DEADLINE) -> T:
    """``value()`` once it is truthy (a bound on waiting, not a timed assertion)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        got = value()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"never saw: {what}")


class Race:
    """One user of the nlp group, their hub and gateway clients, and kubesim."""

    def __init__(self, platform: Any) -> None:
        self.platform = platform
        self.name = f"race-{uuid.uuid4().hex[:6]}"
        platform.api("POST", f"/hub/api/users/{self.name}")
        with contextlib.suppress(urllib.error.HTTPError):
            platform.api("POST", "/hub/api/groups/nlp")
        platform.api("POST", "/hub/api/groups/nlp/users", {"users": [self.name]})
        token = platform.user_token(self.name)
        wait_gateway(platform.hub_url + API, token)
        self.hub = httpx.Client(
            base_url=platform.hub_url,
            headers={"Authorization": f"token {platform.admin_token}"},
            timeout=60,
        )
        self.gateway = httpx.Client(
            base_url=platform.hub_url + API,
            headers={"Authorization": f"token {token}"},
            timeout=60,
        )
        self.kubesim = platform.kube_client()

    def close(self) -> None:
        for client in (self.hub, self.gateway, self.kubesim):
            client.close()

    # --------------------------------------------------------------- what the user holds
    def held(self) -> int:
        label = escape_username(self.name)
        selector = f"{USER_LABEL}={label}"
        pods = self.kubesim.get(
            f"/api/v1/namespaces/{NAMESPACE}/pods", params={"labelSelector": selector}
        ).json()["items"]
        jobs = self.kubesim.get(
            f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs",
            params={"labelSelector": f"{MANAGED_SELECTOR},{selector}"},
        ).json()["items"]
        return count_usage(pods, jobs, user=label, group="nlp").user

    # --------------------------------------------------------------- servers
    def server(self) -> dict[str, Any] | None:
        return self.hub.get(f"/hub/api/users/{self.name}").json()["servers"].get("")

    def start_server(self) -> bool:
        """Ask for the server; True if the hub admitted it (it started, or is starting)."""
        r = self.hub.post(f"/hub/api/users/{self.name}/server", json=SERVER)
        if r.status_code not in (201, 202):
            return False
        # a 202 is still starting: wait until it is ready or has failed
        model = poll(
            lambda: (m := self.server()) is None and {"failed": True} or (m["ready"] and m),
            "the server ready or failed",
        )
        return not model.get("failed")

    def stop_server(self) -> None:
        self.hub.delete(f"/hub/api/users/{self.name}/server")
        poll(lambda: self.server() is None, "the server stopped")

    # --------------------------------------------------------------- jobs
    def submit(self, name: str) -> str | None:
        r = self.gateway.post("/jobs", json=job(name))
        assert r.status_code in (201, 429), r.text
        return r.json()["id"] if r.status_code == 201 else None

    def cancel(self, job_id: str) -> None:
        r = self.gateway.delete(f"/jobs/{job_id}")
        assert r.status_code in (200, 202, 404, 409), r.text


def at_once(*calls: Callable[[], T]) -> list[T]:
    """Run ``calls`` in threads released together by a barrier."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int, call: Callable[[], T]) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def race(platform) -> Iterator[Race]:
    if platform.s3 is None:
        pytest.skip("no Ceph S3 gateway on this machine: the jobs gateway cannot take jobs")
    race = Race(platform)
    try:
        yield race
    finally:
        with contextlib.suppress(Exception):
            race.stop_server()
        race.close()


def test_a_server_and_a_job_asked_for_at_once_never_exceed_the_gpu_quota(race):
    hold = race.submit("hold")
    assert hold is not None
    admitted_rounds = 0
    try:
        poll(lambda: race.held() == QUOTA - 1, "the first job holding 1 GPU")
        for i in range(ROUNDS):
            server_ok, job_id = at_once(race.start_server, lambda i=i: race.submit(f"race-{i}"))
            held = race.held()
            assert held <= QUOTA, (
                f"round {i}: {held} GPUs held, quota {QUOTA} "
                f"(server admitted: {server_ok}, job admitted: {job_id})"
            )
            assert not (server_ok and job_id), f"round {i}: both were admitted"
            admitted_rounds += bool(server_ok or job_id)
            print(f"round {i}: server {'admitted' if server_ok else 'refused'}, job "
                  f"{'admitted' if job_id else 'refused'}, {held} GPUs held")  # fmt: skip
            if server_ok:
                race.stop_server()
            if job_id:
                race.cancel(job_id)
            poll(lambda: race.held() == QUOTA - 1, f"round {i}'s GPU given back")
    finally:
        race.cancel(hold)
    assert admitted_rounds, "no round admitted either: the race was never run"
