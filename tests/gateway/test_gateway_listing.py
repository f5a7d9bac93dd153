"""``GET /jobs`` on the platform: filters, the ``continue`` cursor, and the 400s naming the
parameter. The jobs listed here are made straight in kubesim as the gateway renders them
(suspended and marked cancelled, so no pod runs and no reconciler touches them), owned by
users no other test uses."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from gateway_testlib import NAMESPACE, POLICY
from gpulab.hub.jobs.manifest import render_job
from gpulab.hub.jobs.spec import parse_job_spec
from gpulab.hub.policy.load import load_policy
from gpulab.hub.workload.labels import CANCELLED_ANNOTATION, CANCELLED_BY_ANNOTATION

pytestmark = [pytest.mark.e2e, pytest.mark.ceph]

JOBS = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
OWNERS = {"lister-one": "vision", "lister-two": "nlp"}
PER_OWNER = 5


def listed_job(owner: str, group: str, i: int) -> dict[str, Any]:
    policy = load_policy(POLICY)
    spec = parse_job_spec(
        {"name": "listed", "image": "harbor.local/shared/scipy:2024.10", "command": ["true"]}
    )
    name = f"{owner}-{'abcdefgh'[i]}aaaaa"
    body = render_job(
        spec,
        owner=owner,
        job_id=name,
        entitlement=policy.entitlement(groups=[group]),
        policy=policy,
        image=str(spec.image),
        namespace=NAMESPACE,
        upload_secret_name=f"{name}-upload",
    )
    body["spec"]["suspend"] = True
    body["metadata"]["annotations"] |= {
        CANCELLED_ANNOTATION: dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        CANCELLED_BY_ANNOTATION: owner,
    }
    return body


def ids(page: dict[str, Any]) -> list[str]:
    return [j["id"] for j in page["items"]]


def until_listed(admin: httpx.Client, owner: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        items = admin.get("/jobs", params={"user": owner, "limit": "500"}).json()["items"]
        if len(items) >= count:
            return items
        time.sleep(0.2)
    raise AssertionError(f"the gateway lists {len(items)} of {owner}'s {count} jobs")


@pytest.fixture(scope="module")
def listed(gw) -> Iterator[dict[str, list[dict[str, Any]]]]:
    made = []
    for owner, group in OWNERS.items():
        for i in range(PER_OWNER):
            made.append(gw.kubesim.create(JOBS, listed_job(owner, group, i))["metadata"]["name"])
    with gw.client("admin") as admin:
        yield {owner: until_listed(admin, owner, PER_OWNER) for owner in OWNERS}
    for name in made:
        gw.kubesim.http.delete(f"{JOBS}/{name}")


def walk(client: httpx.Client, params: dict[str, str]) -> list[str]:
    seen: list[str] = []
    token = None
    while True:
        page = client.get("/jobs", params=params | ({"continue": token} if token else {})).json()
        seen += ids(page)
        token = page["continue"]
        if not token:
            return seen


def test_admin_filters_by_user_group_and_state(gw, listed) -> None:
    one = [j["id"] for j in listed["lister-one"]]
    with gw.client("admin") as admin:
        assert ids(admin.get("/jobs", params={"user": "lister-one"}).json()) == one
        by_group = ids(admin.get("/jobs", params={"group": "nlp", "limit": "500"}).json())
        assert set(one).isdisjoint(by_group)
        assert {j["id"] for j in listed["lister-two"]} <= set(by_group)
        cancelled = {"user": "lister-one", "state": "Cancelled"}
        assert ids(admin.get("/jobs", params=cancelled).json()) == one
        running = {"user": "lister-one", "state": "Running"}
        assert admin.get("/jobs", params=running).json() == {"items": [], "continue": None}


def test_the_created_range_selects_by_creation_time(gw, listed) -> None:
    jobs = listed["lister-one"]
    first = min(j["created"] for j in jobs)
    after_last = (
        dt.datetime.fromisoformat(max(j["created"] for j in jobs)) + dt.timedelta(seconds=1)
    ).strftime("%Y-%m-%dT%H:%M:%SZ")
    with gw.client("admin") as admin:
        base = {"user": "lister-one"}
        assert len(ids(admin.get("/jobs", params=base | {"created_since": first}).json())) == 5
        assert ids(admin.get("/jobs", params=base | {"created_before": first}).json()) == []
        assert ids(admin.get("/jobs", params=base | {"created_since": after_last}).json()) == []


def test_the_cursor_walks_every_job_once_newest_first(gw, listed) -> None:
    with gw.client("admin") as admin:
        walked = walk(admin, {"user": "lister-two", "limit": "2"})
    assert walked == [j["id"] for j in listed["lister-two"]]


def test_a_job_made_between_pages_does_not_shift_the_next_page(gw, listed) -> None:
    owner = "lister-three"
    made = [gw.kubesim.create(JOBS, listed_job(owner, "vision", i)) for i in range(3)]
    try:
        with gw.client("admin") as admin:
            before = [j["id"] for j in until_listed(admin, owner, 3)]
            first = admin.get("/jobs", params={"user": owner, "limit": "2"}).json()
            made.append(gw.kubesim.create(JOBS, listed_job(owner, "vision", 3)))
            until_listed(admin, owner, 4)
            rest = walk(admin, {"user": owner, "limit": "2", "continue": first["continue"]})
    finally:
        for job in made:
            gw.kubesim.http.delete(f"{JOBS}/{job['metadata']['name']}")
    assert ids(first) + rest == before


def test_a_non_admin_naming_another_user_lists_nothing(gw, listed) -> None:
    with gw.client("bob") as bob:
        for params in ({"user": "lister-one"}, {"user": "lister-one", "state": "Cancelled"}):
            r = bob.get("/jobs", params=params)
            assert r.status_code == 200 and r.json() == {"items": [], "continue": None}
        by_group = ids(bob.get("/jobs", params={"group": "vision", "limit": "500"}).json())
        assert not {j["id"] for j in listed["lister-one"]} & set(by_group)


@pytest.mark.parametrize(
    ("params", "field", "allowed"),
    [
        ({"limit": "0"}, "limit", "an integer 1-500"),
        ({"limit": "501"}, "limit", "an integer 1-500"),
        ({"limit": "many"}, "limit", "an integer 1-500"),
        ({"state": "Bogus"}, "state", "Pending, Running, Succeeded, Failed, Cancelled"),
        ({"created_since": "yesterday"}, "created_since", "RFC 3339"),
        ({"created_before": "2026-01-01T00:00:00"}, "created_before", "RFC 3339"),
        ({"continue": "!!"}, "continue", "`continue` of a previous page"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it_and_what_it_accepts(
    gw, params: dict[str, str], field: str, allowed: str
) -> None:
    with gw.client("alice") as alice:
        r = alice.get("/jobs", params=params)
    assert r.status_code == 400, r.text
    (problem,) = r.json()["problems"]
    assert problem["field"] == field and allowed in problem["allowed"]


def test_the_cli_s_limit_shows_at_most_that_many_jobs(gw, listed) -> None:
    env = {
        **os.environ,
        "GPULAB_HUB_URL": gw.platform.hub_url,
        "GPULAB_TOKEN": gw.tokens["admin"],
    }
    env.pop("GPULAB_GATEWAY_URL", None)
    env.pop("JUPYTERHUB_API_TOKEN", None)
    done = subprocess.run(
        [sys.executable, "-m", "gpulab.cli", "jobs", "--json", "list"]
        + ["--user", "lister-two", "--limit", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert [j["id"] for j in json.loads(done.stdout)] == [j["id"] for j in listed["lister-two"]][:2]
