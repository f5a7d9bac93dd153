"""Culler cycle cost at N running servers: gpulab's ``Culler.run_cycle()`` against the stock
``jupyterhub_idle_culler.cull_idle()`` on the same hub, in the same run.

    .venv/bin/python benchmarks/culler_cycle.py [--servers 2000] [--runs 5] [--cull 100]

Set-up (every part real except the servers' processes): JupyterHub + configurable-http-proxy
with ``NullSpawner`` (tests/culler_service/barehub.py: a running server with a real token and
proxy route, no process), N users each with a ready default server, and a counting HTTP proxy
(benchmarks/counting_proxy.py, its own process) in front of the hub's REST API. Both cullers
talk to the hub only through that proxy, so each one's requests are counted at the wire, not
by its own bookkeeping.

Scenarios, each run ``--runs`` times per culler, alternating (gpulab, stock, gpulab, ...):

* ``steady``: nothing to cull (the usual cycle). gpulab: every user in a group with a 1 h idle
  rule; stock: ``inactive_limit`` 1 h.
* ``cull``: the same ``--cull`` servers are culled by both (every N/cull-th user). gpulab: those
  users are in a hub group whose policy rule is ``timeout: 1s, warn_before: 0`` (cull at the
  first look, no warning); stock: a ``cull_arbiter`` that picks the same servers. The culled
  servers are started again between runs (not timed).

gpulab's culler is a fresh ``Culler`` per run (as after a service restart: nothing cached).
The stock culler runs with its defaults (``concurrency=10``, the hub's default page size) and
again with ``api_page_size=200`` (gpulab's page size) so that the page count is comparable.
Figures: median wall time of one cycle and hub API requests per cycle. The hub, the proxy and
the clients share the machine's cores; absolute times depend on it, the ratio less so.

Goals (docs/culling.md), gpulab against the stock culler at the same page size (200) in the
same run: at most one request per page of 200 servers plus one per server stopped, and no
more requests than the stock culler; a cycle in about the same time (at most 1.2x, for noise);
exactly the chosen servers culled. The stock culler at its default page size is reported for
context. Quick sizes (``GPULAB_BENCH_QUICK=1``): 200 servers, 3 runs, 20 culled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "culler_service"))

from barehub import BareHub  # noqa: E402
from report import record, sized  # noqa: E402

from gpulab.platform import free_port  # noqa: E402

BENCH = "culler_cycle"
PAGE_SIZE = 200  # gpulab's HubClient page size; the stock culler is run at it too
TIME_RATIO_GOAL = 1.2  # "a steady cycle takes the same time" (docs/culling.md), with noise

POLICY = """
version: 1
default_group: keep
groups:
  keep:
    images: {projects: [shared]}
    profiles: [cpu]
    idle: {timeout: 1h, gpu_idle_after: 1h, warn_before: 10m}
  cullme:
    images: {projects: [shared]}
    profiles: [cpu]
    idle: {timeout: 1s, gpu_idle_after: 1s, warn_before: 0}
profiles:
  cpu:
    display_name: CPU notebook
    cpu: {guarantee: 1, limit: 2}
    memory: {guarantee: 1Gi, limit: 2Gi}
    default: true
catalogue:
  source: static
  static:
    - image: harbor.local/shared/base:1
      display_name: base
"""


def user_name(i: int) -> str:
    return f"u{i:05d}"


class CountingProxy:
    def __init__(self, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("counting_proxy.py")),
                "--target",
                target,
                "--port",
                str(self.port),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.proc.stdout.readline()  # "counting proxy on ..."

    def reset(self) -> None:
        req = urllib.request.Request(self.url + "/__reset", data=b"", method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def counts(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/__counts", timeout=10) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def ready_count(hub: BareHub) -> int:
    n, offset = 0, 0
    while True:
        status, body = hub.request(
            "GET",
            f"/hub/api/users?state=ready&limit=200&offset={offset}",
            headers={"Accept": "application/jupyterhub-pagination+json"},
        )
        assert status == 200, body
        n += len(body["items"])
        nxt = body["_pagination"]["next"]
        if not nxt:
            return n
        offset = nxt["offset"]


def spawn_all(hub: BareHub, names: list[str]) -> None:
    def one(name: str) -> None:
        status, body = hub.request("POST", f"/hub/api/users/{name}/server", {})
        if status not in (201, 202, 400):  # 400: already running
            raise RuntimeError(f"spawn {name}: {status} {body}")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, names))


def wait_ready(hub: BareHub, n: int) -> None:
    deadline = time.monotonic() + 600
    while (have := ready_count(hub)) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {have}/{n} servers ready")
        time.sleep(1)


async def gpulab_cycle(api_url: str, token: str, policy_path: Path) -> tuple[float, int, int]:
    from gpulab.hub.culler.service.cycle import Culler
    from gpulab.hub.culler.service.hub_client import HubClient
    from gpulab.hub.policy import load_policy

    policy = load_policy(policy_path)
    client = HubClient(api_url, token, page_size=PAGE_SIZE)
    # No start-up grace: a fresh culler per measured cycle must judge (and cull) at once.
    culler = Culler(client, lambda: policy, log_keeps=False, report_interval=0)
    try:
        result = await culler.run_cycle()
    finally:
        await client.close()
    return result.seconds, result.culled, result.servers


async def stock_cycle(api_url: str, token: str, cull: set[str], page_size: int) -> float:
    from jupyterhub_idle_culler import cull_idle

    def arbiter(*, inactive: Any, inactive_limit: int, server: dict[str, Any], **_: Any) -> bool:
        # server["url"] is /user/<name>/
        return server["url"].rstrip("/").rsplit("/", 1)[-1] in cull

    logger = logging.getLogger("stock-culler")
    t0 = time.perf_counter()
    await cull_idle(
        api_url,
        token,
        inactive_limit=3600,
        logger=logger,
        api_page_size=page_size,
        cull_arbiter=arbiter,
    )
    return time.perf_counter() - t0


def record_scenario(
    scenario: str,
    results: dict[str, tuple[list[float], list[int], list[int]]],
    servers: int,
    to_cull: int,
) -> None:
    """One scenario's medians: gpulab's with goals and the stock culler at the same page size as
    its baseline; the stock culler's own rows for context."""
    labels = {
        "gpulab": "gpulab",
        "stock": "stock culler (default page size)",
        "stock200": f"stock culler (page {PAGE_SIZE})",
    }
    medians = {
        who: tuple(statistics.median(values) for values in results[f"{scenario}:{who}"])
        for who in labels
    }
    same_page = f"stock culler, page {PAGE_SIZE}"
    for who, label in labels.items():
        seconds, requests, culled = medians[who]
        head = f"{scenario}, {servers} servers: {label}"
        if who != "gpulab":
            record(BENCH, f"{head} cycle", seconds, "s")
            record(BENCH, f"{head} requests", requests, "")
            record(BENCH, f"{head} culled", culled, "")
            continue
        base_seconds, base_requests, _ = medians["stock200"]
        record(
            BENCH,
            f"{head} cycle",
            seconds,
            "s",
            baseline=base_seconds,
            baseline_name=same_page,
            ratio_goal=("<=", TIME_RATIO_GOAL),
        )
        record(
            BENCH,
            f"{head} requests",
            requests,
            "",
            # O(pages) + one request per server stopped
            goal=("<=", math.ceil(servers / PAGE_SIZE) + to_cull),
            baseline=base_requests,
            baseline_name=same_page,
            ratio_goal=("<=", 1.0),
        )
        record(BENCH, f"{head} culled", culled, "", goal=("==", to_cull))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--servers", type=int, default=sized(2000, 200))
    p.add_argument("--runs", type=int, default=sized(5, 3))
    p.add_argument(
        "--cull", type=int, default=sized(100, 20), help="servers culled in the 'cull' scenario"
    )
    p.add_argument("--keep-dir", action="store_true", help="keep the hub's state dir")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("gpulab.culler").setLevel(logging.ERROR)
    logging.getLogger("stock-culler").setLevel(logging.ERROR)

    # The hub's sqlite on tmpfs when there is one: set-up writes thousands of rows, and fsync on
    # a busy disk makes it take many minutes (the measured cycles only read).
    shm = Path("/dev/shm")
    base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    tmp = Path(tempfile.mkdtemp(prefix="gpulab-culler-bench-", dir=base))
    policy_path = tmp / "policy.yaml"
    policy_path.write_text(POLICY)
    names = [user_name(i) for i in range(args.servers)]
    step = max(1, args.servers // max(1, args.cull))
    cull_names = names[::step][: args.cull]
    hub = BareHub(
        tmp / "hub",
        policy_path,
        culler=False,
        extra_config="c.JupyterHub.log_level = 'WARN'\n"
        "c.JupyterHub.init_spawners_timeout = 60\n"
        "c.JupyterHub.cleanup_servers = False\n",
    )
    proxy = None
    t_setup = time.perf_counter()
    try:
        hub.start()
        print(f"hub up; creating {args.servers} users and servers ...", flush=True)
        for i in range(0, len(names), 200):
            hub.api("POST", "/hub/api/users", {"usernames": names[i : i + 200]})
        print(f"{args.servers} users in {time.perf_counter() - t_setup:.0f} s", flush=True)
        hub.api("POST", "/hub/api/groups/cullme")
        spawn_all(hub, names)
        wait_ready(hub, args.servers)
        print(f"{args.servers} servers ready in {time.perf_counter() - t_setup:.0f} s", flush=True)
        proxy = CountingProxy(f"http://127.0.0.1:{hub.hub_port}")
        api_url = proxy.url + "/hub/api"
        time.sleep(1.5)  # every server is now > 1 s old (the 'cullme' rule)

        results: dict[str, tuple[list[float], list[int], list[int]]] = {}

        def note_run(label: str, seconds: float, culled: int) -> None:
            counts = proxy.counts()
            times, reqs, culls = results.setdefault(label, ([], [], []))
            times.append(seconds)
            reqs.append(int(counts["total"]))
            culls.append(culled)

        for scenario in ("steady", "cull"):
            if scenario == "cull":
                hub.api("POST", "/hub/api/groups/cullme/users", {"users": cull_names})
            cull_set = set(cull_names) if scenario == "cull" else set()
            for _run in range(args.runs):
                for who in ("gpulab", "stock", "stock200"):
                    if scenario == "cull":
                        spawn_all(hub, cull_names)
                        wait_ready(hub, args.servers)
                        time.sleep(1.2)
                    proxy.reset()
                    label = f"{scenario}:{who}"
                    if who == "gpulab":
                        secs, culled, seen = asyncio.run(
                            gpulab_cycle(api_url, hub.admin_token, policy_path)
                        )
                        assert seen == args.servers, f"gpulab saw {seen} servers"
                    else:
                        before = args.servers
                        secs = asyncio.run(
                            stock_cycle(
                                api_url,
                                hub.admin_token,
                                cull_set,
                                PAGE_SIZE if who == "stock200" else 0,
                            )
                        )
                        culled = before - ready_count(hub) if cull_set else 0
                    note_run(label, secs, culled)
                    print(
                        f"  {label:16s} {secs:7.3f} s  {results[label][1][-1]:5d} requests"
                        f"  culled {culled}",
                        flush=True,
                    )

        print()
        print(
            f"Culler cycle at {args.servers} running servers (median of {args.runs} runs; "
            f"requests counted at a proxy in front of the hub API)"
        )
        header = (
            f"{'scenario':8s}  {'culler':34s} {'cycle s':>8s} {'requests':>9s} "
            f"{'culled':>7s} {'time vs gpulab':>15s} {'req vs gpulab':>14s}"
        )
        print(header)
        print("-" * len(header))
        names_of = {
            "gpulab": "gpulab Culler.run_cycle (page 200)",
            "stock": "jupyterhub-idle-culler 2.0 (dflt)",
            "stock200": "jupyterhub-idle-culler (page 200)",
        }
        for scenario in ("steady", "cull"):
            base_t = statistics.median(results[f"{scenario}:gpulab"][0])
            base_r = statistics.median(results[f"{scenario}:gpulab"][1])
            for who in ("gpulab", "stock", "stock200"):
                times, reqs, culls = results[f"{scenario}:{who}"]
                t, r = statistics.median(times), statistics.median(reqs)
                print(
                    f"{scenario:8s}  {names_of[who]:34s} {t:8.3f} {r:9.0f} "
                    f"{statistics.median(culls):7.0f} {t / base_t:14.2f}x {r / base_r:13.2f}x"
                )
            record_scenario(
                scenario, results, args.servers, len(cull_names) if scenario == "cull" else 0
            )
    finally:
        if proxy is not None:
            proxy.stop()
        hub.stop()
        if not args.keep_dir:
            import shutil

            with contextlib.suppress(OSError):
                shutil.rmtree(tmp)
        else:
            print(f"state kept in {tmp}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
