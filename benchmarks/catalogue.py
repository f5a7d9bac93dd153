"""Catalogue benchmark: a 5,000-image Harbor (the test stand-in, real HTTP on loopback).

Prints, for concurrency 1 and 8: cold load time and Harbor requests; then warm
``Catalogue.images()`` median / p99 latency and Harbor requests per call (should be 0).

    .venv/bin/python benchmarks/catalogue.py [--images 5000] [--per-repo 200] [--latency-ms 0]

``--latency-ms`` adds a delay to every stand-in answer (a remote Harbor is not on loopback).
The stand-in runs in its own process, so its JSON encoding does not compete with the client
for the GIL.

Goals (docs/catalogue.md): a warm ``images()`` makes no Harbor request; a cold load finishes
within the first callers' wait (``first_load_timeout``, 5 s), so the first spawn page after a
start shows the catalogue. The cold load at concurrency 8 is reported against concurrency 1 in
the same run (on loopback they are alike; the gain shows with ``--latency-ms``).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "catalogue"))

from gpulab.hub.catalogue import Catalogue, HarborSource  # noqa: E402
from harbor_standin import HarborStandin  # noqa: E402
from report import record  # noqa: E402

BENCH = "catalogue"
# How long the first callers (the first spawn pages) wait for a cold load: the hub's default.
FIRST_LOAD_WAIT: float = inspect.signature(Catalogue).parameters["first_load_timeout"].default

ROBOT, PASSWORD = "robot$bench", "bench-secret"


def seed(harbor: HarborStandin, images: int, per_repo: int) -> tuple[list[str], int]:
    """``images`` tagged images, ``per_repo`` per repository, over two projects; every 10th
    repository is nested (``team/sub/...``) and every 20th artifact is a multi-arch index."""
    projects = ["vision", "shared"]
    repos = 0
    made = 0
    while made < images:
        project = projects[repos % 2]
        name = f"team/sub/env{repos:03d}" if repos % 10 == 0 else f"env{repos:03d}"
        for i in range(min(per_repo, images - made)):
            labels = {
                "org.opencontainers.image.title": f"Env {repos} build {i}",
                "io.gpulab.framework": ("pytorch", "tensorflow", "jax")[i % 3],
                "io.gpulab.cuda": "12.4",
            }
            if i % 20 == 0:
                harbor.add_index(project, name, [f"b{i}"], [("linux", "amd64", labels)])
            else:
                harbor.add_image(project, name, [f"b{i}"], labels=labels)
            made += 1
        repos += 1
    return projects, repos


def serve(conn, images: int, per_repo: int) -> None:
    """The stand-in process: seed, serve, answer commands from the pipe."""
    harbor = HarborStandin(users={ROBOT: PASSWORD})
    url = harbor.start()
    projects, repos = seed(harbor, images, per_repo)
    conn.send((url, projects, repos))
    while True:
        cmd, arg = conn.recv()
        if cmd == "stop":
            harbor.stop()
            conn.send(None)
            return
        if cmd == "reset":
            harbor.reset()
            harbor.latency = arg
            conn.send(None)
        elif cmd == "stats":
            conn.send((harbor.count, harbor.max_in_flight))


class Remote:
    def __init__(self, images: int, per_repo: int) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=serve, args=(child, images, per_repo), daemon=True)
        self.proc.start()
        self.url, self.projects, self.repos = self.conn.recv()

    def call(self, cmd: str, arg: object = None) -> object:
        self.conn.send((cmd, arg))
        return self.conn.recv()

    def stop(self) -> None:
        self.call("stop")
        self.proc.join(10)


async def cold(url: str, projects: list[str], concurrency: int) -> tuple[float, int, int]:
    src = HarborSource(
        url, projects=projects, username=ROBOT, password=PASSWORD, concurrency=concurrency
    )
    cat = Catalogue(src, first_load_timeout=600)
    t0 = time.perf_counter()
    images = await cat.images()
    return time.perf_counter() - t0, src.requests, len(images)


async def warm(url: str, projects: list[str], calls: int) -> tuple[list[float], int, int]:
    src = HarborSource(url, projects=projects, username=ROBOT, password=PASSWORD)
    cat = Catalogue(src, first_load_timeout=600)
    await cat.images()
    before = src.requests
    samples = []
    n = 0
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        n = len(await cat.images())
        samples.append((time.perf_counter_ns() - t0) / 1000)
    return samples, src.requests - before, n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--per-repo", type=int, default=200)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--calls", type=int, default=2000)
    args = ap.parse_args()

    remote = Remote(args.images, args.per_repo)
    url, projects, latency = remote.url, remote.projects, args.latency_ms / 1000
    try:
        print(
            f"stand-in: {args.images} tagged images in {remote.repos} repositories "
            f"({args.per_repo} per repository, every 20th a multi-arch index), 2 projects, "
            f"latency {args.latency_ms:g} ms per answer"
        )
        cold_seconds: dict[int, float] = {}
        for concurrency in (1, 8):
            remote.call("reset", latency)
            seconds, requests, n = asyncio.run(cold(url, projects, concurrency))
            served, in_flight = remote.call("stats")  # type: ignore[misc]
            print(
                f"cold load, concurrency {concurrency}: {seconds:.2f} s, {requests} Harbor "
                f"requests (stand-in counted {served}, max {in_flight} in flight), {n} images"
            )
            cold_seconds[concurrency] = seconds
            record(
                BENCH,
                f"cold load of {n} images, concurrency {concurrency}",
                seconds,
                "s",
                goal=("<=", FIRST_LOAD_WAIT),
                **(
                    {"baseline": cold_seconds[1], "baseline_name": "concurrency 1"}
                    if concurrency != 1
                    else {}
                ),
            )
            record(BENCH, f"Harbor requests per cold load, concurrency {concurrency}", requests, "")
        remote.call("reset", latency)
        samples, requests, n = asyncio.run(warm(url, projects, args.calls))
        q = statistics.quantiles(samples, n=100)
        print(
            f"warm images(): median {statistics.median(samples):.1f} µs, p99 {q[98]:.1f} µs "
            f"over {len(samples)} calls ({n} images each); Harbor requests per call: "
            f"{requests / len(samples):g}"
        )
        record(BENCH, f"warm images() median ({n} images)", statistics.median(samples), "µs")
        record(BENCH, f"warm images() p99 ({n} images)", q[98], "µs")
        record(
            BENCH, "Harbor requests per warm images()", requests / len(samples), "", goal=("==", 0)
        )
    finally:
        remote.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
