"""Jobs gateway cost, through the real proxy on the local platform (kubesim + Ceph + hub).

Run: .venv/bin/python benchmarks/jobs_gateway.py [--users 50] [--submits 4]
                                                [--bulk-users 1000] [--bulk-jobs 20]

1. Submit: ``--users`` hub users (group vision) submit ``--submits`` CPU jobs each, all users
   at once (one request in flight per user): p50/p99/max and throughput, against a baseline
   measured in the same run: bare ``POST Job`` requests with the manifests the gateway renders
   for the same specs, at the same concurrency, against the same kubesim, from the same client
   stack (httpx) minus the proxy and the gateway. The users' home claims exist, and each user
   signed in first (``GET /me``: the hub checks a token once, the gateway keeps the answer 30 s),
   whose latency is reported on its own. Also the Kubernetes API writes the gateway made per
   submit, counted from kubesim's audit log.
2. List latency with ``--bulk-users`` x ``--bulk-jobs`` Jobs in the cluster, created directly in
   kubesim (suspended, so no process runs), labelled and annotated as the gateway makes them:
   a user listing their own jobs, and an admin listing all (first page of 50 and of 500).
3. Kubernetes API requests the gateway made per list/get (kubesim's audit log, the gateway's
   User-Agent, watches excluded): 0 is the design.

Figures are printed, not asserted (they depend on the machine); the submit figures are also
recorded with their goals (benchmarks/report.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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


BENCH = "jobs_gateway"
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
GATEWAY_AGENT = "gpulab-jobs-gateway"


def bench_spec(i: int) -> dict[str, Any]:
    """The spec every submitter sends (its ``i``-th job)."""
    return {"name": f"bench{i}", "image": "harbor.local/shared/scipy:2024.10", "command": ["true"]}


@dataclass
class Phase:
    """One timed phase: every request's latency (s), the wall time (s), errors by status."""

    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    errors: dict[int, int] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return len(self.latencies) - sum(self.errors.values())

    @property
    def throughput(self) -> float:
        return self.ok / self.wall if self.wall else 0.0


async def timed_phase(
    clients: dict[str, httpx.AsyncClient],
    send: Callable[[httpx.AsyncClient, str, int], Any],
    per_client: int,
    ok: int,
) -> Phase:
    """Every client sends ``per_client`` requests, one in flight each, all clients at once."""
    phase = Phase()

    async def loop(name: str, client: httpx.AsyncClient) -> None:
        for i in range(per_client):
            t0 = time.perf_counter()
            r = await send(client, name, i)
            phase.latencies.append(time.perf_counter() - t0)
            if r.status_code != ok:
                phase.errors[r.status_code] = phase.errors.get(r.status_code, 0) + 1

    t0 = time.perf_counter()
    await asyncio.gather(*(loop(n, c) for n, c in clients.items()))
    phase.wall = time.perf_counter() - t0
    return phase


async def submit_phase(base: str, tokens: dict[str, str], submits: int) -> tuple[Phase, Phase]:
    """The users sign in (``GET /me``, all at once: the gateway has the hub check each token,
    then keeps the answer 30 s, as a researcher's client does before submitting), then submit
    through the proxy and the gateway; both phases."""
    clients = {
        n: httpx.AsyncClient(base_url=base, headers={"Authorization": f"token {t}"}, timeout=120)
        for n, t in tokens.items()
    }
    try:
        sign_in = await timed_phase(clients, lambda c, _n, _i: c.get("/me"), 1, 200)
        submit = await timed_phase(
            clients, lambda c, _n, i: c.post("/jobs", json=bench_spec(i)), submits, 201
        )
        return sign_in, submit
    finally:
        for c in clients.values():
            await c.aclose()


def bare_manifests(users: list[str], submits: int) -> dict[str, list[dict[str, Any]]]:
    """The Jobs the gateway renders for ``bench_spec(i)`` of each user (group vision)."""
    from gpulab.hub.jobs.ids import new_job_id
    from gpulab.hub.jobs.manifest import render_job, upload_secret_name
    from gpulab.hub.jobs.spec import parse_job_spec
    from gpulab.hub.policy import load_policy

    policy = load_policy(POLICY)
    ent = policy.entitlement(groups=["vision"])
    assert ent is not None
    out: dict[str, list[dict[str, Any]]] = {}
    for user in users:
        out[user] = []
        for i in range(submits):
            spec = parse_job_spec(bench_spec(i))
            job_id = new_job_id(spec.name)
            out[user].append(
                render_job(
                    spec,
                    owner=user,
                    job_id=job_id,
                    entitlement=ent,
                    policy=policy,
                    image=str(spec.image),
                    namespace=NS,
                    upload_secret_name=upload_secret_name(job_id),
                )
            )
    return out


async def bare_phase(platform: LocalPlatform, manifests: dict[str, list[dict[str, Any]]]) -> Phase:
    """The same Jobs POSTed straight to kubesim, one client per user, at the same concurrency."""
    ssl = platform.kube_ssl_context()
    clients = {
        n: httpx.AsyncClient(
            base_url=platform.kubesim_url, headers=platform.kube_headers(), verify=ssl, timeout=120
        )
        for n in manifests
    }
    path = f"/apis/batch/v1/namespaces/{NS}/jobs"
    try:
        return await timed_phase(
            clients,
            lambda c, n, i: c.post(path, json=manifests[n][i]),
            len(next(iter(manifests.values()))),
            201,
        )
    finally:
        for c in clients.values():
            await c.aclose()


def remove_bare_jobs(platform: LocalPlatform, users: list[str], limit: float = 120.0) -> None:
    """Delete the baseline's Jobs and their pods, and wait until they are gone: they have no
    upload Secret, so the gateway would otherwise fail them as half-made during its phase
    (writes that are not a submit's), and the gateway phase starts on a quiet API server."""
    kube = platform.kube_client()
    selector = {"labelSelector": f"gpulab.io/user in ({','.join(users)})"}
    for path in (f"/apis/batch/v1/namespaces/{NS}/jobs", f"/api/v1/namespaces/{NS}/pods"):
        kube.request(
            "DELETE", path, params={**selector, "propagationPolicy": "Background"}
        ).raise_for_status()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        left = sum(
            len(kube.get(path, params=selector).json()["items"])
            for path in (f"/apis/batch/v1/namespaces/{NS}/jobs", f"/api/v1/namespaces/{NS}/pods")
        )
        if not left:
            return
        time.sleep(0.5)
    print(f"   (the baseline's Jobs and pods were not all gone within {limit:.0f} s)")


def gateway_requests(audit: Path, start: int) -> tuple[dict[str, int], int]:
    """The gateway's API requests in the audit log after line ``start`` (watches excluded)
    by verb and resource, and how many of them were writes."""
    counts: dict[str, int] = {}
    writes = 0
    for line in audit.read_text().splitlines()[start:]:
        rec = json.loads(line)
        if GATEWAY_AGENT not in rec.get("userAgent", "") or rec.get("verb") == "watch":
            continue
        key = f"{rec['verb']} {rec['resource']}"
        counts[key] = counts.get(key, 0) + 1
        writes += rec["verb"] in WRITE_VERBS
    return counts, writes


def submit_benchmark(
    platform: LocalPlatform, base: str, tokens: dict[str, str], submits: int
) -> None:
    """Part 1: the baseline (bare creates), then the same load through the gateway."""
    from gpulab.hub.policy import load_policy
    from gpulab.hub.workload.pod import home_claim
    from report import record

    users = len(tokens)
    print(f"\n4. submit: {users} users at once, {submits} jobs each", flush=True)
    bare_users = [f"bare{u:03d}" for u in range(users)]
    bare = asyncio.run(bare_phase(platform, bare_manifests(bare_users, submits)))
    show("bare POST Job to kubesim (201), baseline", bare.latencies)
    if bare.errors:
        print("   bare create errors by status:", bare.errors)
    remove_bare_jobs(platform, bare_users)

    # The users' home claims exist, as they do once a user started a server (the spawner
    # makes it); a missing one costs its first submit one more write (tests count that).
    kube = platform.kube_client()
    for user in tokens:
        kube.post(
            f"/api/v1/namespaces/{NS}/persistentvolumeclaims",
            json=home_claim(load_policy(POLICY), user, NS),
        ).raise_for_status()
    audit = platform.state_dir / "kubesim-audit.jsonl"
    audit_start = len(audit.read_text().splitlines())
    sign_in, gw = asyncio.run(submit_phase(base, tokens, submits))
    show("GET /me, first call of each token (hub checks it)", sign_in.latencies)
    show("POST /jobs through the gateway (201)", gw.latencies)
    if gw.errors:
        print("   submit errors by status:", gw.errors)
    counts, writes = gateway_requests(audit, audit_start)
    per_submit = writes / max(1, gw.ok)
    print(
        f"   throughput: gateway {gw.throughput:.1f} submits/s, bare {bare.throughput:.1f} "
        f"creates/s; the gateway's API requests (watches excluded): {counts}"
    )

    bare_ms = [v * 1000 for v in bare.latencies]
    gw_ms = [v * 1000 for v in gw.latencies]
    bare_p99 = pct(bare_ms, 99)
    record(BENCH, "bare POST Job p50", pct(bare_ms, 50), "ms")
    record(BENCH, "bare POST Job p99", bare_p99, "ms")
    record(BENCH, "submit p50", pct(gw_ms, 50), "ms")
    record(
        BENCH, "submit p99", pct(gw_ms, 99), "ms",
        baseline=bare_p99, baseline_name="bare POST Job p99", ratio_goal=("<=", 1.5),
    )  # fmt: skip
    record(BENCH, "bare creates per second", bare.throughput, "1/s")
    record(
        BENCH, "submits per second", gw.throughput, "1/s",
        baseline=bare.throughput, baseline_name="bare creates per second", ratio_goal=(">=", 0.8),
    )  # fmt: skip
    record(BENCH, "first call of a token p99 (the hub checks it)", pct(
        [v * 1000 for v in sign_in.latencies], 99), "ms")  # fmt: skip
    record(BENCH, "submit errors", float(sum(gw.errors.values())), "requests", goal=("==", 0))
    record(BENCH, "API writes per submit", per_submit, "writes", goal=("<=", 2))


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
        # stay Pending and the figures are the gateway's and the API server's, not 400 Python
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
        submit_benchmark(platform, base, tokens, args.submits)

    finally:
        platform.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
