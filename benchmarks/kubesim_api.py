"""kubesim API cost: request throughput and watch fan-out, against a real `kubesim serve`.

Run: .venv/bin/python benchmarks/kubesim_api.py [--pods 1000] [--watchers 50] [--concurrency 16]

It starts `gpulab kubesim serve` in a child process (so the client does not share the
server's event loop), opens N watchers on one namespace's pods, creates the pods (bound to a
node no kubelet serves, or unschedulable with --pending), then measures GETs and LISTs. Each pod carries
its creation-request time in an annotation, so every watcher can compute delivery latency.
Figures are printed and recorded, not asserted: they depend on the machine, and the docs state
no goal for them (the jobs gateway's benchmark holds submits to bare Job creates on kubesim).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from gpulab.kubesim.launch import KubesimChild
from report import record

BENCH = "kubesim_api"
NS = "bench"


def pod(i: int, pending: bool) -> dict[str, Any]:
    # Bound to a node no kubelet serves: the API and watch cost alone. With --pending the pods
    # are unschedulable instead, which adds the scheduler's retries to the figure.
    placement: dict[str, Any] = (
        {"nodeSelector": {"bench/never": "true"}} if pending else {"nodeName": "bench-ghost-node"}
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"p-{i:05d}",
            "labels": {"app": "bench"},
            "annotations": {"bench/t0": repr(time.time())},
        },
        "spec": {
            **placement,
            "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "1"]}],
        },
    }


async def timed(n: int, concurrency: int, op: Any) -> tuple[float, list[float]]:
    """Run op(i) for i < n with bounded concurrency: (wall seconds, per-request latencies)."""
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(i: int) -> None:
        async with sem:
            t = time.perf_counter()
            await op(i)
            latencies.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - t0, latencies


async def watcher(
    session: aiohttp.ClientSession, url: str, rv: str, expect: int, out: list[float]
) -> None:
    seen = 0
    async with session.get(
        f"{url}/api/v1/namespaces/{NS}/pods",
        params={"watch": "true", "resourceVersion": rv, "timeoutSeconds": "600"},
    ) as resp:
        async for line in resp.content:
            event = json.loads(line)
            if event["type"] != "ADDED":
                continue
            out.append(time.time() - float(event["object"]["metadata"]["annotations"]["bench/t0"]))
            seen += 1
            if seen >= expect:
                return


def quantiles_ms(values: list[float]) -> dict[str, float]:
    """Median, p95 and max of latencies in seconds, in milliseconds."""
    values = sorted(values)
    p95 = values[int(len(values) * 0.95) - 1] if values else float("nan")
    return {"median": statistics.median(values) * 1000, "p95": p95 * 1000, "max": values[-1] * 1000}


def recorded_latencies(what: str, values: list[float]) -> str:
    """The latency line's text; each of its figures recorded as ``<what> <quantile>``."""
    q = quantiles_ms(values)
    for name, value in q.items():
        record(BENCH, f"{what} {name}", value, "ms")
    return ", ".join(f"{name} {value:.1f} ms" for name, value in q.items())


def rate(what: str, count: int, wall: float, unit: str) -> float:
    """Requests per second, recorded."""
    per_second = count / wall
    record(BENCH, what, per_second, unit)
    return per_second


async def run(url: str, pods: int, watchers: int, concurrency: int, pending: bool) -> None:
    conn = aiohttp.TCPConnector(limit=watchers + concurrency + 4)
    async with aiohttp.ClientSession(
        connector=conn, timeout=aiohttp.ClientTimeout(total=None)
    ) as s:
        async with s.post(f"{url}/api/v1/namespaces", json={"metadata": {"name": NS}}) as r:
            assert r.status == 201, await r.text()
        async with s.get(f"{url}/api/v1/namespaces/{NS}/pods") as r:
            rv = (await r.json())["metadata"]["resourceVersion"]
        delivery: list[list[float]] = [[] for _ in range(watchers)]
        tasks = [
            asyncio.create_task(watcher(s, url, rv, pods, delivery[i])) for i in range(watchers)
        ]
        await asyncio.sleep(0.5)  # let the watches connect

        async def create(i: int) -> None:
            async with s.post(f"{url}/api/v1/namespaces/{NS}/pods", json=pod(i, pending)) as r:
                assert r.status == 201, await r.text()

        wall, lat = await timed(pods, concurrency, create)
        creates = rate(f"create rate, {watchers} watchers", pods, wall, "creates/s")
        print(
            f"create: {pods} pods in {wall:.2f} s = {creates:.0f} creates/s with {watchers} watchers; "
            f"{recorded_latencies('create latency', lat)}"
        )
        t = time.perf_counter()
        await asyncio.gather(*tasks)
        drain = time.perf_counter() - t
        flat = [x for d in delivery for x in d]
        record(BENCH, "watch events all delivered, after the last create", drain, "s")
        print(
            f"watch fan-out: {len(flat)} events to {watchers} watchers (all delivered {drain:.2f} s after the last create); "
            f"delivery latency {recorded_latencies('watch delivery latency', flat)}"
        )

        async def get(i: int) -> None:
            async with s.get(f"{url}/api/v1/namespaces/{NS}/pods/p-{i % pods:05d}") as r:
                assert r.status == 200
                await r.read()

        wall, lat = await timed(pods, concurrency, get)
        gets = rate("get rate", pods, wall, "gets/s")
        print(
            f"get: {pods} in {wall:.2f} s = {gets:.0f} gets/s; {recorded_latencies('get latency', lat)}"
        )

        lists = 50

        async def list_all(i: int) -> None:
            async with s.get(f"{url}/api/v1/namespaces/{NS}/pods") as r:
                assert len((await r.json())["items"]) == pods

        wall, lat = await timed(lists, 4, list_all)
        full = rate(f"list rate ({pods} pods each)", lists, wall, "lists/s")
        print(
            f"list ({pods} pods each): {lists} in {wall:.2f} s = {full:.1f} lists/s; "
            f"{recorded_latencies(f'list latency ({pods} pods each)', lat)}"
        )

        async def list_selected(i: int) -> None:
            async with s.get(
                f"{url}/api/v1/namespaces/{NS}/pods",
                params={"fieldSelector": f"metadata.name=p-{i % pods:05d}"},
            ) as r:
                assert len((await r.json())["items"]) == 1

        wall, lat = await timed(200, concurrency, list_selected)
        selected = rate(f"list rate (fieldSelector, 1 of {pods})", 200, wall, "lists/s")
        print(
            f"list (fieldSelector, 1 of {pods}): 200 in {wall:.2f} s = {selected:.0f} lists/s; "
            f"{recorded_latencies(f'list latency (fieldSelector, 1 of {pods})', lat)}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--watchers", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--pending", action="store_true", help="unschedulable pods (adds scheduler work)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubesim-bench-") as tmp:
        sim = KubesimChild.start(Path(tmp))
        try:
            print(f"kubesim at {sim.url}; {os.cpu_count()} CPUs on this machine")
            asyncio.run(run(sim.url, args.pods, args.watchers, args.concurrency, args.pending))
        finally:
            sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
