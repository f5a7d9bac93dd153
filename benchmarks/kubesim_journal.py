"""kubesim persistence cost: a store write with and without the on-disk journal, and the
snapshot written at start and at a clean stop.

Run: .venv/bin/python benchmarks/kubesim_journal.py [--pods 3000]

Each pod is created and then given a status (two commits), in-process on a bare Store (no
HTTP), so the figure is the store's own cost per commit. Figures are printed and recorded
(the journal's cost against the memory-only store of the same run), not asserted: they depend
on the machine and its disk, and the docs state none as a goal.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from gpulab.kubesim.persist import Journal
from gpulab.kubesim.store import Store, resource
from report import record

BENCH = "kubesim_journal"
PODS = resource("pods")


def pod(i: int) -> dict[str, Any]:
    env = [{"name": f"VAR_{n}", "value": "x" * 20} for n in range(20)]  # a spawner-like pod
    return {
        "metadata": {"name": f"pod-{i}", "labels": {"app": "bench"}},
        "spec": {
            "nodeName": "bench-ghost-node",
            "containers": [{"name": "main", "image": "python", "command": ["sleep"], "env": env}],
        },
    }


def microseconds_per_commit(store: Store, count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        store.create(PODS, "default", pod(i))
        store.mutate(PODS, "default", f"pod-{i}", lambda o: o.update(status={"phase": "Running"}))
    return (time.perf_counter() - started) / (2 * count) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=3000)
    args = parser.parse_args()
    in_memory = microseconds_per_commit(Store(), args.pods)
    print(f"memory only : {in_memory:7.1f} us per commit")
    record(BENCH, "commit, memory only", in_memory, "µs")
    with tempfile.TemporaryDirectory() as folder:
        store = Store(journal=Journal(Path(folder)))
        per_commit = microseconds_per_commit(store, args.pods)
        print(f"with journal: {per_commit:7.1f} us per commit")
        record(
            BENCH,
            "commit, with journal",
            per_commit,
            "µs",
            baseline=in_memory,
            baseline_name="memory only",
        )
        journal = Path(folder) / "journal.jsonl"
        size = journal.stat().st_size / 1e6
        print(f"journal     : {size:7.1f} MB for {2 * args.pods} commits")
        record(BENCH, f"journal size for {2 * args.pods} commits", size, "MB")
        started = time.perf_counter()
        store.compact()
        snapshot = (time.perf_counter() - started) * 1e3
        print(f"snapshot    : {snapshot:7.0f} ms ({args.pods} pods)")
        record(BENCH, f"snapshot of {args.pods} pods", snapshot, "ms")
        started = time.perf_counter()
        Store(journal=Journal(Path(folder)))
        restore = (time.perf_counter() - started) * 1e3
        print(f"restore     : {restore:7.0f} ms (load + snapshot)")
        record(BENCH, f"restore of {args.pods} pods (load + snapshot)", restore, "ms")


if __name__ == "__main__":
    main()
