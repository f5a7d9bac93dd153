"""The jobs list at 20,000 jobs, as users and admins page through it (local platform, no Ceph).

Run: .venv/bin/python benchmarks/admin_views.py [--users 1000] [--per-user 20] [--requests 200]

20,000 suspended Jobs are created straight in kubesim, rendered by the gateway's own manifest
builder (``render_job``: its labels and annotations), owned by ``--users`` users in two quota
groups; every tenth carries the gateway's cancel marks (state Cancelled). Then, through the
proxy, ``--requests`` timed GETs of each view:

* a user listing their own jobs;
* an admin's first page (``limit=50``);
* an admin's filtered first pages: by user, by group, by a rare state (Cancelled) and by a
  state nothing is in (Running: a scan finds nothing and reads everything);
* an admin's page half-way down the list (``continue`` token from walking there).

p50 and p99 of each are recorded (``benchmarks/report.py``; goal p99 <= 20 ms).

The Jobs have no upload Secret (the figures are the listing's, not 20,000 Secret creates): the
gateway's half-made reconciler is given a day's grace so it does not fail them mid-run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import record  # noqa: E402 - benchmarks run as scripts

if TYPE_CHECKING:
    from gpulab.platform import LocalPlatform

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "tests" / "e2e" / "policy.yaml"
API = "/services/jobs-gateway/api/v1"
NAMESPACE = "default"
BENCH = "admin_views"
GOAL_P99_MS = 20.0
GROUPS = ("vision", "nlp")
# The bench Jobs have no upload Secret: keep the half-made reconciler off them for the run.
LONG_GRACE = """
for _service in c.JupyterHub.services:
    if _service["name"] == "jobs-gateway":
        _service["command"].append("--GatewayApp.half_made_grace=86400")
"""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def user_name(u: int) -> str:
    return f"lister{u:04d}"


def job_id(i: int) -> str:
    suffix = "".join("abcdefghijklmnopqrstuvwxyz234567"[(i >> (5 * k)) & 31] for k in range(6))
    return f"listed-{suffix}"


class Manifests:
    """Jobs as the gateway renders them, for the benchmark's users."""

    def __init__(self) -> None:
        from gpulab.hub.jobs.spec import parse_job_spec
        from gpulab.hub.policy.load import load_policy

        self.policy = load_policy(POLICY)
        self.spec = parse_job_spec(
            {"name": "listed", "image": "harbor.local/shared/scipy:2024.10", "command": ["true"]}
        )
        self.entitlements = {g: self.policy.entitlement(groups=[g]) for g in GROUPS}

    def job(self, i: int, users: int) -> dict[str, Any]:
        from gpulab.hub.jobs.manifest import render_job
        from gpulab.hub.workload.labels import CANCELLED_ANNOTATION, CANCELLED_BY_ANNOTATION

        u = i % users
        name = job_id(i)
        body = render_job(
            self.spec,
            owner=user_name(u),
            job_id=name,
            entitlement=self.entitlements[GROUPS[u % len(GROUPS)]],
            policy=self.policy,
            image=str(self.spec.image),
            namespace=NAMESPACE,
            upload_secret_name=f"{name}-upload",
        )
        body["spec"]["suspend"] = True  # no pod, no process: the figures are the listing's
        if i % 10 == 9:
            now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            body["metadata"]["annotations"] |= {
                CANCELLED_ANNOTATION: now,
                CANCELLED_BY_ANNOTATION: user_name(u),
            }
        return body


async def create_jobs(platform: LocalPlatform, bodies: list[dict[str, Any]]) -> float:
    sem = asyncio.Semaphore(16)
    t0 = time.perf_counter()
    async with httpx.AsyncClient(
        base_url=platform.kubesim_url,
        headers=platform.kube_headers(),
        verify=platform.kube_ssl_context(),
        timeout=120,
    ) as http:

        async def one(body: dict[str, Any]) -> None:
            async with sem:
                r = await http.post(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs", json=body)
                if r.status_code not in (200, 201, 409):
                    raise RuntimeError(f"creating a Job: {r.status_code} {r.text[:200]}")

        await asyncio.gather(*(one(b) for b in bodies))
    return time.perf_counter() - t0


def timed(client: httpx.Client, params: dict[str, str], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get("/jobs", params=params)
        out.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
    return out


def wait_listed(admin: httpx.Client, job: str, seconds: float) -> float:
    """Seconds until the gateway's cache holds ``job`` (created last)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if admin.get(f"/jobs/{job}").status_code == 200:
            return time.monotonic() - t0
        time.sleep(0.5)
    raise RuntimeError(f"the gateway did not list {job} within {seconds:.0f} s")


def cursor_at(admin: httpx.Client, depth: int) -> str:
    """The ``continue`` token ``depth`` jobs down the admin's full list."""
    token, seen = "", 0
    while seen < depth:
        params = {"limit": str(min(500, depth - seen))} | ({"continue": token} if token else {})
        page = admin.get("/jobs", params=params).json()
        seen += len(page["items"])
        token = page["continue"]
        if not token:
            raise RuntimeError(f"the list ended after {seen} jobs, before {depth}")
    return token


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--per-user", type=int, default=20)
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args()

    from gpulab.platform import LocalPlatform, PlatformConfig, free_port

    total = args.users * args.per_user
    tmp = Path(tempfile.mkdtemp(prefix="gpulab-bench-admin-views-"))
    platform = LocalPlatform(
        PlatformConfig(
            state_dir=tmp,
            policy_path=POLICY,
            port=free_port(),
            s3=False,
            extra_hub_config=LONG_GRACE,
        )
    )
    print(f"starting the platform in {tmp} ...", flush=True)
    platform.start()
    try:
        base = platform.hub_url + API
        own = user_name(1)
        platform.api("POST", f"/hub/api/users/{own}", {})
        headers = {"admin": platform.user_token("admin"), own: platform.user_token(own)}
        admin = httpx.Client(
            base_url=base, headers={"Authorization": f"token {headers['admin']}"}, timeout=120
        )
        mine = httpx.Client(
            base_url=base, headers={"Authorization": f"token {headers[own]}"}, timeout=120
        )
        deadline = time.monotonic() + 120
        while admin.get("/me").status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway did not answer within 120 s")
            time.sleep(0.3)

        manifests = Manifests()
        bodies = [manifests.job(i, args.users) for i in range(total)]
        print(f"creating {total} suspended Jobs in kubesim ...", flush=True)
        took = asyncio.run(create_jobs(platform, bodies[:-1]))
        asyncio.run(create_jobs(platform, bodies[-1:]))  # last: once listed, all are
        print(f"  created in {took:.1f} s ({total / took:.0f}/s)", flush=True)
        caught_up = wait_listed(admin, job_id(total - 1), 600)
        print(f"  the gateway listed them {caught_up:.1f} s later", flush=True)

        deep = total // 2
        views: list[tuple[str, httpx.Client, dict[str, str]]] = [
            (f"user's own list ({args.per_user} jobs)", mine, {}),
            ("admin first page (limit=50)", admin, {"limit": "50"}),
            ("admin by user (limit=50)", admin, {"user": user_name(2), "limit": "50"}),
            ("admin by group (limit=50)", admin, {"group": GROUPS[1], "limit": "50"}),
            ("admin by state Cancelled (limit=50)", admin, {"state": "Cancelled", "limit": "50"}),
            ("admin by state Running, none (limit=50)", admin, {"state": "Running", "limit": "50"}),
            (
                f"admin page {deep:,} deep via continue (limit=50)",
                admin,
                {"limit": "50", "continue": cursor_at(admin, deep)},
            ),
        ]
        print(f"\n{args.requests} GETs each, {total:,} jobs in the cluster:")
        for label, client, params in views:
            timed(client, params, 5)  # warm: the first request after a change renders views
            ms = timed(client, params, args.requests)
            p50, p99 = percentile(ms, 50), percentile(ms, 99)
            print(f"  {label:48s} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms", flush=True)
            record(BENCH, f"{label}: p50", p50, "ms")
            record(BENCH, f"{label}: p99", p99, "ms", goal=("<=", GOAL_P99_MS))
        admin.close()
        mine.close()
    finally:
        platform.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
