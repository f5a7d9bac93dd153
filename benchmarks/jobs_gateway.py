"""Jobs gateway cost, through the real proxy on the local platform (kubesim + Ceph + hub).

Run: .venv/bin/python benchmarks/jobs_gateway.py [--users 50] [--submits 4]
                                                [--bulk-users 1000] [--bulk-jobs 20]

1. Submit latency: ``--users`` hub users (group vision) submit ``--submits`` CPU jobs each,
   all users at once (one request in flight per user): p50/p99/max.
2. List latency with ``--bulk-users`` x ``--bulk-jobs`` Jobs in the cluster, created directly in
   kubesim (suspended, so no process runs), labelled and annotated as the gateway makes them:
   a user listing their own jobs, and an admin listing all (first page of 50 and of 500).
3. Kubernetes API requests the gateway made per list/get (kubesim's audit log, the gateway's
   User-Agent, watches excluded): 0 is the design.

Figures are printed, not asserted (they depend on the machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from gpulab.platform import LocalPlatform

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "tests" / "e2e" / "policy.yaml"
API = "/services/jobs-gateway/api/v1"
NS = "default"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


def show(label: str, values: list[float]) -> None:
    ms = [v * 1000 for v in values]
    print(
        f"{label:48s} n={len(ms):5d}  p50={pct(ms, 50):7.1f} ms  p99={pct(ms, 99):7.1f} ms"
        f"  max={max(ms):7.1f} ms  mean={statistics.fmean(ms):7.1f} ms"
    )


def bulk_job(user: str, i: int) -> dict[str, Any]:
    from gpulab.hub.names import escape_username

    suffix = "".join("abcdefghijklmnopqrstuvwxyz234567"[(i >> (5 * k)) & 31] for k in range(6))
    job_id = f"bulk-{escape_username(user)}-{suffix}"
    spec = {"name": "bulk", "image": "harbor.local/shared/scipy:2024.10", "command": ["true"]}
    labels = {
        "app.kubernetes.io/name": "gpulab",
        "app.kubernetes.io/component": "job",
        "app.kubernetes.io/managed-by": "gpulab",
        "gpulab.io/user": escape_username(user),
        "gpulab.io/job-id": job_id,
        "gpulab.io/group": "vision",
        "gpulab.io/gpus": "0",
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_id,
            "namespace": NS,
            "labels": labels,
            "annotations": {"gpulab.io/owner": user, "gpulab.io/spec": json.dumps(spec)},
        },
        "spec": {
            "suspend": True,
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "containers": [{"name": "job", "image": spec["image"], "command": ["true"]}],
                },
            },
        },
    }


async def create_bulk(
    platform: LocalPlatform, users: int, per_user: int, max_seconds: float
) -> tuple[float, int]:
    """Create the Jobs, job j of every user before job j+1 of any; stop after max_seconds."""
    sem = asyncio.Semaphore(32)
    t0 = time.perf_counter()
    made = 0
    async with httpx.AsyncClient(
        base_url=platform.kubesim_url,
        headers=platform.kube_headers(),
        verify=platform.kube_ssl_context(),
        timeout=60,
    ) as http:

        async def one(user: str, i: int) -> None:
            nonlocal made
            async with sem:
                if time.perf_counter() - t0 > max_seconds:
                    return
                r = await http.post(f"/apis/batch/v1/namespaces/{NS}/jobs", json=bulk_job(user, i))
                if r.status_code not in (200, 201, 409):
                    raise RuntimeError(f"{r.status_code} {r.text[:200]}")
                made += 1

        await asyncio.gather(
            *(one(f"bulk{u:04d}", u * per_user + j) for j in range(per_user) for u in range(users))
        )
    return time.perf_counter() - t0, made


async def submit_phase(base: str, tokens: dict[str, str], submits: int) -> list[float]:
    latencies: list[float] = []
    errors: dict[int, int] = {}

    async def user_loop(name: str, token: str) -> None:
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"token {token}"}, timeout=120
        ) as c:
            for i in range(submits):
                spec = {
                    "name": f"bench{i}",
                    "image": "harbor.local/shared/scipy:2024.10",
                    "command": ["true"],
                }
                t0 = time.perf_counter()
                r = await c.post("/jobs", json=spec)
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 201:
                    errors[r.status_code] = errors.get(r.status_code, 0) + 1

    await asyncio.gather(*(user_loop(n, t) for n, t in tokens.items()))
    if errors:
        print("submit errors by status:", errors)
    return latencies


async def timed_gets(base: str, token: str, path: str, n: int, params=None) -> list[float]:
    out = []
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"token {token}"}, timeout=120
    ) as c:
        for _ in range(n):
            t0 = time.perf_counter()
            r = await c.get(path, params=params)
            out.append(time.perf_counter() - t0)
            r.raise_for_status()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--submits", type=int, default=4)
    ap.add_argument("--bulk-users", type=int, default=1000)
    ap.add_argument("--bulk-jobs", type=int, default=20)
    ap.add_argument("--nodes", default="2x4")
    ap.add_argument("--only-submit", action="store_true", help="skip the bulk list phase")
    ap.add_argument(
        "--max-create-seconds", type=float, default=600, help="stop creating bulk Jobs after this"
    )
    args = ap.parse_args()

    from gpulab.platform import LocalPlatform, PlatformConfig, free_port

    tmp = Path(tempfile.mkdtemp(prefix="gpulab-bench-gateway-"))
    platform = LocalPlatform(
        PlatformConfig(state_dir=tmp, policy_path=POLICY, port=free_port(), nodes=args.nodes)
    )
    print(f"starting the platform in {tmp} ...", flush=True)
    platform.start()
    try:
        base = platform.hub_url + API
        names = [f"bench{u:03d}" for u in range(args.users)]
        for name in names:
            platform.api("POST", f"/hub/api/users/{name}", {})
        platform.api("POST", "/hub/api/groups/vision/users", {"users": names})
        tokens = {n: platform.user_token(n) for n in names}
        admin = platform.user_token("admin")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            r = httpx.get(base + "/me", headers={"Authorization": f"token {admin}"})
            if r.status_code == 200:
                break
            time.sleep(0.3)

        total = args.bulk_users * args.bulk_jobs
        if args.only_submit:
            total = 0
        if not args.only_submit:
            print(f"\n1. creating {total} suspended Jobs in kubesim ...", flush=True)
            took, made = asyncio.run(
                create_bulk(platform, args.bulk_users, args.bulk_jobs, args.max_create_seconds)
            )
            print(f"   created {made} in {took:.1f} s ({made / took:.0f}/s)")
            per_user_made = made // args.bulk_users
            # wait until the gateway's cache holds them all (admin list sees the last one)
            want = f"bulk{args.bulk_users - 1:04d}"
            for name in (want, "bulk0000"):
                platform.api("POST", f"/hub/api/users/{name}", {})
            platform.api("POST", "/hub/api/groups/vision/users", {"users": [want, "bulk0000"]})
            bulk_token = platform.user_token(want)
            first_token = platform.user_token("bulk0000")
            t0 = time.monotonic()
            while time.monotonic() - t0 < 300:
                r = httpx.get(base + "/jobs", headers={"Authorization": f"token {bulk_token}"})
                if r.status_code == 200 and len(r.json()["items"]) >= per_user_made:
                    break
                time.sleep(0.5)
            print(f"   gateway cache caught up {time.monotonic() - t0:.1f} s after the creates")

            audit = platform.state_dir / "kubesim-audit.jsonl"
            audit_start = len(audit.read_text().splitlines())
            show(
                f"GET /jobs (own {per_user_made} of {made})",
                asyncio.run(timed_gets(base, first_token, "/jobs", 200)),
            )
            show(
                "GET /jobs/{id} (own)",
                asyncio.run(
                    timed_gets(
                        base,
                        first_token,
                        "/jobs/" + bulk_job("bulk0000", 0)["metadata"]["name"],
                        200,
                    )
                ),
            )
            show(
                f"GET /jobs admin, all {made}, limit=50",
                asyncio.run(timed_gets(base, admin, "/jobs", 30, {"limit": "50"})),
            )
            show(
                f"GET /jobs admin, all {made}, limit=500",
                asyncio.run(timed_gets(base, admin, "/jobs", 10, {"limit": "500"})),
            )
            show(
                "GET /jobs admin, user=bulk0500",
                asyncio.run(timed_gets(base, admin, "/jobs", 50, {"user": "bulk0500"})),
            )
            non_watch: dict[str, int] = {}
            for line in audit.read_text().splitlines()[audit_start:]:
                rec = json.loads(line)
                if "gpulab-jobs-gateway" in rec.get("userAgent", "") and rec.get("verb") != "watch":
                    key = f"{rec['verb']} {rec['resource']}"
                    non_watch[key] = non_watch.get(key, 0) + 1
            lists = 200 + 200 + 30 + 10 + 50
            print(
                f"\n3. Kubernetes API requests during {lists} list/get calls (the gateway's, watches excluded): "
                f"{sum(non_watch.values())} -> {sum(non_watch.values()) / lists:.3f} per call"
                f"  {non_watch if non_watch else ''}"
            )
        # Job pods are real processes in kubesim: cordon and taint the nodes so that the submitted jobs
        # stay Pending and the figures are the gateway's and the API server's, not 200 Python
        # processes starting on this machine.
        kube = platform.kube_client()
        nodes = kube.get("/api/v1/nodes").json()["items"]
        for node in nodes:
            kube.patch(
                f"/api/v1/nodes/{node['metadata']['name']}",
                json={
                    "spec": {
                        "unschedulable": True,
                        "taints": [{"key": "gpulab.io/benchmark", "effect": "NoSchedule"}],
                    }
                },
                headers={"Content-Type": "application/merge-patch+json"},
            ).raise_for_status()
        print(f"\n4. submit: {args.users} users at once, {args.submits} jobs each", flush=True)
        lat = asyncio.run(submit_phase(base, tokens, args.submits))
        show("POST /jobs (201)", lat)

    finally:
        platform.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
