"""Quota ledger benchmark: what the cross-process quota arbiter adds to a start or a submit.

Against kubesim in this process (loopback HTTP), prints the median and p95 latency of one
``QuotaLedger.reserve`` (a read and a conditional write) with no contention, then with
``--concurrency`` checkers (each its own client, as the spawner and the gateway are) reserving
in the same quota group at once, and the conflicts (409s, each one read and one write more)
they caused.

    .venv/bin/python benchmarks/quota_ledger.py [--rounds 200] [--concurrency 8]

The contended figures are reported against the uncontended ones of the same run; the docs
state no goal for them (figures for context).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from gpulab.hub.kube import KubeClient, KubeError
from gpulab.hub.workload.holdings import GpuUsage
from gpulab.hub.workload.quota_ledger import QuotaLedger
from gpulab.kubesim.config import KubesimConfig
from gpulab.kubesim.main import KubeSim
from report import record

BENCH = "quota_ledger"


class CountingClient(KubeClient):
    """Counts the ledger's writes that met a conflict."""

    conflicts = 0

    async def request(self, method, path, **kw):  # type: ignore[override]
        try:
            return await super().request(method, path, **kw)
        except KubeError as exc:
            if exc.status == 409:
                CountingClient.conflicts += 1
            raise


async def reserve(ledger: QuotaLedger, name: str) -> float:
    started = time.perf_counter()
    problems = await ledger.reserve(
        "bench",
        "job",
        name,
        user="bench",
        gpus=0,
        counted=lambda: GpuUsage(),
        seen=lambda e: False,
        check=lambda usage: [],
    )
    assert problems == []
    return time.perf_counter() - started


def median_p95(seconds: list[float]) -> tuple[float, float]:
    """Milliseconds."""
    ms = sorted(s * 1000 for s in seconds)
    return statistics.median(ms), ms[int(len(ms) * 0.95) - 1]


def summary(label: str, seconds: list[float]) -> str:
    median, p95 = median_p95(seconds)
    return f"{label}: median {median:.1f} ms, p95 {p95:.1f} ms ({len(seconds)} reserves)"


async def main(rounds: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = KubesimConfig(data_dir=Path(tmp) / "data", nodes=[])
        async with KubeSim(config) as sim:
            clients = [
                await CountingClient.connect(str(sim.kubeconfig_path), user_agent="bench/0")
                for _ in range(concurrency)
            ]
            # expired at once: the ledger stays small, as it does in use
            ledgers = [QuotaLedger(c, "default", ttl=0.001) for c in clients]
            try:
                alone = [await reserve(ledgers[0], f"alone-{i}") for i in range(rounds)]
                print(summary("one checker", alone))
                alone_median, alone_p95 = median_p95(alone)
                record(BENCH, "reserve median, one checker", alone_median, "ms")
                record(BENCH, "reserve p95, one checker", alone_p95, "ms")
                CountingClient.conflicts = 0
                together: list[float] = []
                for i in range(rounds // concurrency or 1):
                    together += await asyncio.gather(
                        *(reserve(lg, f"r{i}-{j}") for j, lg in enumerate(ledgers))
                    )
                print(summary(f"{concurrency} checkers at once", together))
                median, p95 = median_p95(together)
                for name, value, alone_value in (
                    ("median", median, alone_median),
                    ("p95", p95, alone_p95),
                ):
                    record(
                        BENCH,
                        f"reserve {name}, {concurrency} checkers at once",
                        value,
                        "ms",
                        baseline=alone_value,
                        baseline_name="one checker",
                    )
                conflicts = CountingClient.conflicts / len(together)
                print(f"conflicts: {conflicts:.2f} per reserve")
                record(BENCH, f"conflicts per reserve, {concurrency} checkers", conflicts, "")
            finally:
                for c in clients:
                    await c.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.concurrency))
