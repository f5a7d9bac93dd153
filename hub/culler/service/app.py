"""The culler service process: ``python -m gpulab.hub.culler.service``.

Runs as a JupyterHub managed service: a tornado app with the culler API and the admin
dashboard, a cull cycle every ``interval`` seconds, the policy file watched for changes and,
when Kubernetes is reachable, the usage recorder. Configured like every gpulab hub service
(:mod:`gpulab.hub.service_app`): ``--policy``, ``--interval``, ``--page-size``, ``--dry-run``,
``--db``, ``--kubeconfig``, ``--namespace``, ``--port``, or ``--CullerApp.<trait>=...``, a
config file (``-f``/``--config``), or the environment the hub gives the service.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from gpulab.hub.kube import KubeError
from gpulab.hub.policy import PolicyFile
from gpulab.hub.usage.models import default_db_url, open_or_stand_in
from gpulab.hub.usage.recorder import UsageRecorder
from jupyterhub.services.auth import HubOAuth
from tornado import web
from traitlets import Bool, Float, Integer, Unicode, default

from ...background import Background
from ...framing import deny_framing
from ...metrics import set_component
from ...metrics_endpoint import metrics_route
from ...service_app import ServiceApp, service_aliases, until_stopped
from .cycle import Culler
from .handlers import DASHBOARD_PAGE, routes
from .hub_client import HubClient
from .job_cancel import JobCanceller
from .kube import KubeAccess
from .metrics import GpuCollector, culler_registry
from .overview import ClusterObjects, SlowFigures, build_overview
from .queues import QueueObjects
from .snapshot import OverviewSnapshot
from .store import StateStore

__all__ = ["CullerApp", "main", "make_app"]

log = logging.getLogger("gpulab.culler")


class CullerApp(ServiceApp):
    name = "gpulab-culler"
    description = (
        "gpulab's GPU-aware culler, usage recorder and admin dashboard (a JupyterHub service)."
    )
    default_url = "http://127.0.0.1:10101"
    default_prefix = "/services/culler/"

    interval = Float(60.0, help="seconds between cull cycles").tag(config=True)
    page_size = Integer(200, help="users per hub API page").tag(config=True)
    report_interval = Float(
        60.0,
        help="seconds between two servers' activity reports (the server extension's "
        "report_interval): for this long after start, a server that has not reported since "
        "is not judged idle",
    ).tag(config=True)
    dry_run = Bool(False, help="decide and log, never stop servers").tag(config=True)
    db_url = Unicode(
        help="usage DB URL (default: $GPULAB_USAGE_DB or "
        "sqlite:///gpulab-usage.sqlite in the hub's directory)"
    ).tag(config=True)
    kubeconfig = Unicode(
        help="kubeconfig (default: $KUBECONFIG, else in-cluster, else no usage recording)"
    ).tag(config=True)
    namespace = Unicode(
        help="namespace of gpulab pods (default $GPULAB_NAMESPACE; empty: all)"
    ).tag(config=True)

    aliases: ClassVar[dict[Any, Any]] = service_aliases(
        "CullerApp",
        interval="interval",
        **{"page-size": "page_size"},
        db="db_url",
        kubeconfig="kubeconfig",
        namespace="namespace",
    )
    flags: ClassVar[dict[Any, Any]] = {
        **ServiceApp.flags,
        "dry-run": ({"CullerApp": {"dry_run": True}}, "decide and log, never stop servers"),
    }

    @default("namespace")
    def _namespace_default(self) -> str:
        return os.environ.get("GPULAB_NAMESPACE", "")

    @default("log_level")
    def _log_level_default(self) -> int:
        # Every decision is logged with its reason: that log is the culler's audit trail.
        return logging.INFO

    async def serve(self) -> None:
        set_component("culler")
        policy_file = PolicyFile(self.require_policy(), log)
        if not self.api_token:
            raise SystemExit("no hub API token: set JUPYTERHUB_API_TOKEN (the hub does)")
        hub = HubClient(self.hub_api_url, self.api_token, page_size=self.page_size)
        # A broken usage database costs the accounting, never the culling, keeps or dashboard.
        engine, accounting_problem = open_usage_db(self.db_url or default_db_url())
        store = StateStore(engine, accounting_problem)
        await store.open()
        culler = Culler(
            hub,
            lambda: policy_file.policy,
            dry_run=self.dry_run,
            store=store,
            report_interval=self.report_interval,
        )
        restored = await culler.restore()
        if restored:
            log.info("restored keeps and warnings of %d server(s)", restored)
        namespace = self.namespace or None
        kube: KubeAccess | None = None
        recorder = None
        try:
            kube = await KubeAccess.connect(self.kubeconfig or None, namespace)
        except KubeError as exc:
            log.warning("no usable Kubernetes configuration (%s): usage is not recorded", exc)
        if kube is not None:
            kube.watch_nodes()
            kube.watch_queues()
        if kube is not None and accounting_problem is None:
            recorder = UsageRecorder(engine, kube.kube, namespace)
            recorder.start()
        canceller = JobCanceller(self.hub_api_url, self.api_token)
        culler.job_actions = canceller  # report and stop jobs holding idle GPUs

        def cluster() -> tuple[list[Any], list[Any]] | None:
            nodes = kube.node_objects() if kube is not None else None
            if nodes is None:
                return None
            pods = list(recorder.cache.objects.values()) if recorder is not None else []
            return nodes, pods

        app = make_app(
            culler,
            engine,
            cluster,
            policy_file,
            self.service_prefix,
            canceller,
            accounting_problem,
            pods=None if recorder is None else (lambda: recorder.cache.objects.values()),
            authenticate_metrics=self.authenticate_prometheus,
            queues=None if kube is None else kube.queue_objects,
        )
        server = self.listen(app, max_body_size=1024 * 1024)
        log.info(
            "culler service on %s%s (interval %.0fs%s)",
            self.service_url,
            self.service_prefix,
            self.interval,
            ", DRY RUN" if self.dry_run else "",
        )
        background = Background()
        background.start("policy-watch", policy_file.watch(5.0))
        background.start("cull-cycles", _cycles(culler, self.interval))
        await until_stopped()
        server.stop()
        await background.stop()
        if recorder is not None:
            await recorder.stop()
        if kube is not None:
            await kube.close()
        await hub.close()
        await canceller.close()
        engine.dispose()


def open_usage_db(url: str) -> tuple[Any, str | None]:
    """The usage engine and, when the database cannot be opened, why (then the engine is an
    empty stand-in and nothing is recorded)."""
    engine, problem = open_or_stand_in(url)
    if problem is not None:
        log.error("usage accounting unavailable: %s; culling, keeps and dashboard go on", problem)
    return engine, problem


def make_app(
    culler: Culler,
    engine: Any,
    cluster: ClusterObjects,
    policy_file: PolicyFile,
    prefix: str,
    canceller: JobCanceller,
    accounting_problem: str | None = None,
    *,
    pods: Callable[[], Iterable[Mapping[str, Any]]] | None = None,
    authenticate_metrics: bool = True,
    queues: QueueObjects | None = None,
) -> web.Application:
    """``pods``: the gpulab pods the usage recorder's watch cache holds (the GPU gauges of
    ``/metrics``; None: no usage recording, no GPU gauges); ``queues``: whether Kueue is
    installed and its Workloads and LocalQueues (None: no cluster access)."""
    hub_auth = HubOAuth(cache_max_age=30)
    metrics = metrics_route(
        prefix,
        hub_auth,
        culler_registry(GpuCollector(pods, lambda: culler.servers)),
        authenticate=authenticate_metrics,
    )

    def groups_of(user: str) -> list[str]:
        model = culler.hub._users.get(user)
        return list(((model or (0, None))[1] or {}).get("groups") or [])

    slow = SlowFigures(engine)
    from gpulab.hub.catalogue.identity import IdentityCheck

    harbor_identity = IdentityCheck(lambda: policy_file.policy)

    async def build() -> dict[str, Any]:
        return await build_overview(
            culler,
            engine,
            cluster,
            policy_file.policy,
            slow=slow,
            accounting_problem=accounting_problem,
            policy_status=policy_file.status(),
            catalogue_status=await harbor_identity.status(),
            queues=queues,
        )

    from gpulab.hub.dashboard import XSRF_SLOT, render_dashboard

    def page(data: dict[str, Any]) -> str:
        return render_dashboard(data, prefix=prefix, xsrf=XSRF_SLOT)

    snapshot = OverviewSnapshot(build, pages={DASHBOARD_PAGE: page})

    async def overview() -> dict[str, Any]:
        return (await snapshot.get()).data

    app = web.Application(
        [metrics, *routes(prefix)],  # type: ignore[list-item]
        culler=culler,
        engine=engine,
        hub_auth=hub_auth,
        prefix=prefix,
        overview=overview,
        snapshot=snapshot,
        overview_changed=snapshot.invalidate,  # a stop or cancel shows on the next refresh
        groups_of=groups_of,
        job_canceller=canceller,
        pods=pods,
        cookie_secret=os.urandom(32),
    )
    return deny_framing(app)  # the admin dashboard is never framed (click-jacking)


async def _cycles(culler: Culler, interval: float) -> None:
    while True:
        try:
            await culler.run_cycle()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - keep culling whatever one cycle hit
            log.exception("cull cycle failed")
        await asyncio.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    CullerApp.launch_instance(argv)
    return 0
