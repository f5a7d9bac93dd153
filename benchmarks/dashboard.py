"""Dashboard benchmark: the admin dashboard's data API and page at 2,000 running servers.

    .venv/bin/python benchmarks/dashboard.py [--servers 2000] [--days 30] [--seconds 15]

The state is fed the way the culler gets it: the usage database holds one open interval per
running server (what the usage recorder writes from pod watch events) and a month of finished
ones (one per server per day); the node watch cache holds 250 8-GPU nodes and the pod watch
cache the servers' pods bound to them; the cull cycle's view holds every server, a tenth of
them idle. Then, in this process (the handler's hub authentication is cached and not
measured):

* the data view (``GET /api/v1/overview``) as served now, over HTTP: a tornado server in this
  process answers as the handler does once the caller is known (the snapshot's encoded JSON;
  :class:`OverviewSnapshot`: rebuilt in the background every 5 s, the 30-day figures kept for
  a minute, nodes and pods from the caches) and a client thread asks every 10 ms for
  ``--seconds`` (accepting gzip, as browsers do), so that the requests share the process
  with several rebuilds;
* the same data view built per request, as before (open intervals and the 30-day figures read
  on every request: the baseline, measured in the same run, ``--before`` requests);
* the page (``GET /dashboard/``: rendered once per snapshot, the XSRF token put in per
  request), over HTTP the same way.

Goal: data view p99 <= 20 ms. Figures are recorded with benchmarks/report.py::record.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from gpulab.hub.culler.rules import Decision  # noqa: E402
from gpulab.hub.culler.service.cycle import Culler, ServerView  # noqa: E402
from gpulab.hub.culler.service.overview import SlowFigures, build_overview  # noqa: E402
from gpulab.hub.culler.service.snapshot import OverviewSnapshot  # noqa: E402
from gpulab.hub.dashboard import XSRF_SLOT, render_dashboard  # noqa: E402
from gpulab.hub.policy import load_policy  # noqa: E402
from gpulab.hub.usage.models import UsageInterval, make_engine  # noqa: E402
from report import record  # noqa: E402

BENCH = "dashboard"
GROUPS = ("vision", "nlp", "speech", "robotics", "bio")
NODES = 250
GPUS_PER_NODE = 8


def seed_database(url: str, servers: int, days: int, now: datetime) -> None:
    engine = make_engine(url)
    rows: list[dict[str, Any]] = []
    for i in range(servers):
        user, group = f"user{i:04d}", GROUPS[i % len(GROUPS)]
        base = {"namespace": "default", "user": user, "group_name": group, "kind": "server",
                "job_id": None, "gpus": 1 + i % 4, "gpu_type": "a100", "cpu": 4.0,
                "server_name": ""}  # fmt: skip
        started = now - timedelta(hours=1 + i % 20)
        rows.append({**base, "pod_uid": f"run-{i}", "pod_name": f"jupyter-{user}",
                     "started_at": started, "ended_at": None, "last_seen_at": now})  # fmt: skip
        for day in range(1, days + 1):
            start = now - timedelta(days=day, hours=i % 12)
            rows.append({**base, "pod_uid": f"old-{i}-{day}", "pod_name": f"jupyter-{user}",
                         "started_at": start, "ended_at": start + timedelta(hours=3),
                         "last_seen_at": start + timedelta(hours=3)})  # fmt: skip
    with engine.begin() as conn:
        for k in range(0, len(rows), 5000):
            conn.execute(UsageInterval.__table__.insert(), rows[k : k + 5000])
    engine.dispose()


def cluster_objects(servers: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    nodes = [
        {
            "metadata": {"name": f"gpu-{n:03d}", "labels": {"nvidia.com/gpu.product": "A100"}},
            "status": {
                "allocatable": {"nvidia.com/gpu": str(GPUS_PER_NODE)},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
        for n in range(NODES)
    ]
    pods = [
        {
            "metadata": {
                "name": f"jupyter-user{i:04d}",
                "labels": {"gpulab.io/user": f"user{i:04d}"},
            },
            "spec": {
                "nodeName": f"gpu-{i % NODES:03d}",
                "containers": [{"resources": {"limits": {"nvidia.com/gpu": "1"}}}],
            },
            "status": {"phase": "Running"},
        }
        for i in range(servers)
    ]
    return nodes, pods


def culler_with(servers: int, policy: Any, now: datetime) -> Culler:
    culler = Culler(None, lambda: policy)  # type: ignore[arg-type]  # no hub: no cycle runs
    for i in range(servers):
        idle = i % 10 == 0
        decision = Decision("warn" if idle else "none", "GPU idle 2h" if idle else "busy",  # type: ignore[arg-type]
                            now + timedelta(hours=1) if idle else None,
                            "warned" if idle else "active")  # fmt: skip
        culler.servers[(f"user{i:04d}", "")] = ServerView(
            f"user{i:04d}", "", [GROUPS[i % len(GROUPS)]], now - timedelta(hours=2), 1 + i % 4,
            decision, now,
        )  # fmt: skip
    return culler


def client(url: str, seconds: float, out: list[float]) -> None:
    """A browser's requests (gzip accepted, as browsers do), timed end to end: request sent
    to the last byte read and decompressed."""
    end = time.monotonic() + seconds
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    while time.monotonic() < end:
        t0 = time.perf_counter()
        with urllib.request.urlopen(request) as r:
            body = r.read()
            if r.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
        out.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.01)  # pacing: an admin's browser, not a load generator


async def over_http(port: int, path: str, seconds: float) -> list[float]:
    out: list[float] = []  # the loop serves while the client thread asks
    await asyncio.to_thread(client, f"http://127.0.0.1:{port}{path}", seconds, out)
    return out


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return statistics.median(ordered), p99


async def measure(call: Any, *, requests: int) -> list[float]:
    """Latencies (ms) of ``requests`` calls, in process."""
    out: list[float] = []
    for _ in range(requests):
        t0 = time.perf_counter()
        await call()
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def run(args: argparse.Namespace) -> None:
    now = datetime.now(UTC)
    policy = load_policy(ROOT / "hub" / "demo" / "policy.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'usage.sqlite'}"
        t0 = time.perf_counter()
        seed_database(url, args.servers, args.days, now)
        print(
            f"seeded {args.servers} servers x {args.days} days in {time.perf_counter() - t0:.1f}s"
        )
        engine = make_engine(url)
        culler = culler_with(args.servers, policy, now)
        objects = cluster_objects(args.servers)
        slow = SlowFigures(engine)

        async def build() -> dict[str, Any]:
            return await build_overview(culler, engine, lambda: objects, policy, slow=slow)

        def render(data: dict[str, Any]) -> str:
            return render_dashboard(data, prefix="/c/", xsrf=XSRF_SLOT)

        snapshot = OverviewSnapshot(build, pages={"d": render})

        async def data_now() -> bytes:
            return (await snapshot.get()).json

        async def data_before() -> str:
            data = await build_overview(culler, engine, lambda: objects, policy)
            return json.dumps(data)

        async def page() -> str:
            built = await snapshot.get()
            html = built.page("d", render)
            return html.replace(XSRF_SLOT, "token", 1)

        from tornado import web

        class Data(web.RequestHandler):
            async def get(self) -> None:  # as OverviewHandler.get, once the caller is known
                built = await snapshot.get()
                body, encoding = built.json_for(self.request.headers.get("Accept-Encoding", ""))
                self.set_header("Content-Type", "application/json")
                if encoding:
                    self.set_header("Content-Encoding", encoding)
                self.finish(body)

        class Page(web.RequestHandler):
            async def get(self) -> None:
                self.set_header("Content-Type", "text/html; charset=utf-8")
                self.finish(await page())

        t0 = time.perf_counter()
        await build()
        print(f"one snapshot build: {(time.perf_counter() - t0) * 1000:.0f} ms")
        size = len(await data_now())
        size_gz = len((await snapshot.get()).json_gzip)
        html = len((await page()).encode())
        before = await measure(data_before, requests=args.before)
        server = web.Application([("/overview", Data), ("/dashboard", Page)]).listen(0)
        port = next(iter(server._sockets.values())).getsockname()[1]
        after = await over_http(port, "/overview", args.seconds)
        pages = await over_http(port, "/dashboard", args.seconds)
        server.stop()
        engine.dispose()

    b50, b99 = percentiles(before)
    a50, a99 = percentiles(after)
    p50, p99 = percentiles(pages)
    print(
        f"data view, 30-day figures read per request (before): p50 {b50:.1f} ms, p99 {b99:.1f} ms"
    )
    print(
        f"data view (now, HTTP): p50 {a50:.2f} ms, p99 {a99:.2f} ms, {size / 1024:.0f} KiB ({size_gz / 1024:.0f} KiB gzip)"
    )
    print(f"({len(after)} data and {len(pages)} page requests)")
    print(f"page (HTTP): p50 {p50:.2f} ms, p99 {p99:.2f} ms, {html / 1024:.0f} KiB")
    n = args.servers
    record(BENCH, f"data view p99 before, {n} servers", b99, "ms")
    record(BENCH, f"data view p50, {n} servers", a50, "ms")
    record(BENCH, f"data view p99, {n} servers", a99, "ms", goal=("<=", 20.0),
           baseline=b99, baseline_name="data view p99 before")  # fmt: skip
    record(BENCH, f"page p50, {n} servers", p50, "ms")
    record(BENCH, f"page p99, {n} servers", p99, "ms")
    record(BENCH, f"data view size, {n} servers", size / 1024, "KiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--before", type=int, default=3, help="requests built as before")
    parser.add_argument("--seconds", type=float, default=15.0, help="per measured view")
    asyncio.run(run(parser.parse_args()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
