"""The culler service process: ``python -m gpulab.hub.culler.service``.

Runs as a JupyterHub managed service (the hub gives it ``JUPYTERHUB_API_TOKEN``,
``JUPYTERHUB_API_URL``, ``JUPYTERHUB_SERVICE_URL`` and ``JUPYTERHUB_SERVICE_PREFIX``): a tornado
app with the culler API and the admin dashboard, a cull cycle every ``--interval`` seconds, the
policy file watched for changes and, when Kubernetes is reachable, the usage recorder.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from typing import Any
from urllib.parse import urlparse

from gpulab.hub.kube import KubeError
from gpulab.hub.policy import PolicyFile
from gpulab.hub.usage.models import default_db_url, make_engine
from gpulab.hub.usage.recorder import UsageRecorder
from jupyterhub.services.auth import HubOAuth
from tornado import web

from .cycle import Culler
from .handlers import routes
from .hub_client import HubClient
from .kube import KubeAccess
from .overview import build_overview

__all__ = ["build_parser", "main", "make_app"]

log = logging.getLogger("gpulab.culler")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m gpulab.hub.culler.service",
        description="gpulab's GPU-aware culler, usage recorder and admin dashboard "
        "(a JupyterHub service).",
    )
    p.add_argument(
        "--policy",
        default=os.environ.get("GPULAB_POLICY"),
        required=False,
        help="policy file (default: $GPULAB_POLICY)",
    )
    p.add_argument("--interval", type=float, default=60.0, help="seconds between cull cycles")
    p.add_argument("--page-size", type=int, default=200, help="users per hub API page")
    p.add_argument("--dry-run", action="store_true", help="decide and log, never stop servers")
    p.add_argument(
        "--db",
        default=None,
        help="usage DB URL (default: $GPULAB_USAGE_DB or "
        "sqlite:///gpulab-usage.sqlite in the hub's directory)",
    )
    p.add_argument(
        "--kubeconfig",
        default=None,
        help="kubeconfig (default: $KUBECONFIG, else in-cluster, else no usage recording)",
    )
    p.add_argument(
        "--namespace",
        default=os.environ.get("GPULAB_NAMESPACE"),
        help="namespace of gpulab pods (default: all)",
    )
    p.add_argument(
        "--port", type=int, default=None, help="listen port (default: from $JUPYTERHUB_SERVICE_URL)"
    )
    return p


def make_app(
    culler: Culler, engine: Any, kube: KubeAccess | None, policy_file: PolicyFile, prefix: str
) -> web.Application:
    hub_auth = HubOAuth(cache_max_age=30)

    def groups_of(user: str) -> list[str]:
        model = culler.hub._users.get(user)
        return list(((model or (0, None))[1] or {}).get("groups") or [])

    async def overview() -> dict[str, Any]:
        return await build_overview(culler, engine, kube, policy_file.policy)

    async def cancel_job(job_id: str) -> list[str]:
        assert kube is not None
        return await kube.cancel_job(job_id)

    return web.Application(
        routes(prefix),  # type: ignore[arg-type]
        culler=culler,
        engine=engine,
        hub_auth=hub_auth,
        prefix=prefix,
        overview=overview,
        groups_of=groups_of,
        cancel_job=cancel_job if kube is not None else None,
        cookie_secret=os.urandom(32),
    )


async def _cycles(culler: Culler, interval: float) -> None:
    while True:
        try:
            await culler.run_cycle()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - keep culling whatever one cycle hit
            log.exception("cull cycle failed")
        await asyncio.sleep(interval)


async def serve(args: argparse.Namespace) -> None:
    policy_path = args.policy
    if not policy_path:
        raise SystemExit("no policy: pass --policy or set GPULAB_POLICY")
    policy_file = PolicyFile(policy_path, log)
    api_url = os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api")
    hub = HubClient(api_url, os.environ["JUPYTERHUB_API_TOKEN"], page_size=args.page_size)
    culler = Culler(hub, lambda: policy_file.policy, dry_run=args.dry_run)
    engine = make_engine(args.db or default_db_url())
    kube: KubeAccess | None = None
    recorder = None
    try:
        kube = await KubeAccess.connect(args.kubeconfig, args.namespace)
    except KubeError as exc:
        log.warning("no usable Kubernetes configuration (%s): usage is not recorded", exc)
    if kube is not None:
        recorder = UsageRecorder(engine, kube.kube, args.namespace)
        recorder.start()
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/culler/")
    app = make_app(culler, engine, kube, policy_file, prefix)
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101"))
    port = args.port or url.port or 10101
    server = app.listen(port, address=url.hostname or "127.0.0.1", max_body_size=1024 * 1024)
    log.info(
        "culler service on %s:%d%s (interval %.0fs%s)",
        url.hostname,
        port,
        prefix,
        args.interval,
        ", DRY RUN" if args.dry_run else "",
    )
    watcher = asyncio.create_task(policy_file.watch(5.0))
    cycles = asyncio.create_task(_cycles(culler, args.interval))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()
    for task in (watcher, cycles):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if recorder is not None:
        await recorder.stop()
    if kube is not None:
        await kube.close()
    await hub.close()
    engine.dispose()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    asyncio.run(serve(args))
    return 0
