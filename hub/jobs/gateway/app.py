"""The gateway process: ``python -m gpulab.hub.jobs.gateway`` (a JupyterHub managed service).

Configured like every gpulab hub service (:mod:`gpulab.hub.service_app`): ``--policy``,
``--GatewayApp.<trait>=...`` on the command line, a config file (``-f``/``--config``), or the
environment the hub gives the service. S3 keys come from the variables the policy's ``s3``
section names; they are never logged and never answered.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, ClassVar

from jupyterhub.services.auth import HubOAuth
from tornado import web
from traitlets import Bool, Float, Integer, List, Unicode, default

from ...background import Background
from ...catalogue import catalogue_from_policy
from ...framing import deny_framing
from ...kube import Retry
from ...metrics import set_component
from ...metrics_endpoint import metrics_route
from ...policy import PolicyFile
from ...service_app import ServiceApp, service_aliases, until_stopped
from ..storage import AsyncJobStorage, JobStorage, StorageConfigError
from .auth import IdentityResolver
from .cache import ClusterCache
from .definitions import Definitions
from .gpu_idle import gpu_idle_routes
from .handlers import routes
from .homes import HomeClaims
from .images import image_routes
from .kube import USER_AGENT, Kube
from .kueue import kueue_queues
from .metrics import gateway_registry
from .notifier import Notifier, NotifyConfig
from .notify_delivery import Backoff, SmtpConfig
from .notify_handlers import notify_routes
from .notify_store import NotifyStore
from .openapi import openapi
from .service import Gateway

__all__ = ["GatewayApp", "main", "make_app"]

MAX_BODY = 1024 * 1024  # the server's cap; the API answers 413 above 64 KiB itself


class GatewayApp(ServiceApp):
    name = "gpulab-jobs-gateway"
    description = "gpulab's jobs gateway: submit, watch and fetch batch jobs (a JupyterHub service)"
    default_url = "http://127.0.0.1:10102"
    default_prefix = "/services/jobs-gateway/"

    namespace = Unicode(
        help="namespace of jobs (default $GPULAB_NAMESPACE, $POD_NAMESPACE, "
        "the in-cluster namespace, else 'default')"
    ).tag(config=True)
    kubeconfig = Unicode(
        help="kubeconfig path (default $KUBECONFIG; empty = in-cluster, else ~/.kube/config)"
    ).tag(config=True)
    public_url = Unicode(
        help="absolute URL of the gateway that job pods may call (default "
        "$GPULAB_GATEWAY_PUBLIC_URL; empty = jobs are not told)"
    ).tag(config=True)
    culler_url = Unicode(
        help="the culler's URL that GPU jobs report their GPUs' utilisation to (default "
        "$GPULAB_CULLER_PUBLIC_URL; empty: jobs do not report, and idle GPUs of jobs go unseen)"
    ).tag(config=True)
    s3_public_endpoint = Unicode(
        help="S3 URL for presigned URLs when users reach S3 elsewhere than the gateway "
        "(default $GPULAB_S3_PUBLIC_ENDPOINT)"
    ).tag(config=True)
    identity_max_age = Float(
        30.0, help="seconds a user's groups are cached (admin rights come from each token's scopes)"
    ).tag(config=True)
    policy_interval = Float(5.0, help="seconds between policy file checks").tag(config=True)
    list_page_size = Integer(500, help="page size of the cache's initial lists").tag(config=True)
    kube_timeout = Float(15.0, help="seconds per Kubernetes API request").tag(config=True)
    kube_retry_attempts = Integer(
        3, help="tries of a Kubernetes API call that failed for a transient reason (1 = none)"
    ).tag(config=True)
    kube_retry_budget = Float(
        3.0, help="seconds within which those tries are made, pauses (Retry-After) included"
    ).tag(config=True)
    half_made_grace = Float(
        60.0,
        help="seconds after which a Job still without its upload Secret is failed and deleted "
        "(longer than a submit takes to create both)",
    ).tag(config=True)

    # Notifications (docs/admin.md, "E-mail and webhook notifications"). The SMTP password
    # is read from $GPULAB_SMTP_PASSWORD only (a Secret in production), never from config.
    notify_enabled = Bool(True, help="notify job owners when their jobs end or are preempted").tag(
        config=True
    )
    smtp_host = Unicode(
        help="SMTP server for e-mail notifications (default $GPULAB_SMTP_HOST; "
        "empty = no e-mail, webhooks only)"
    ).tag(config=True)
    smtp_port = Integer(587, help="SMTP port").tag(config=True)
    smtp_security = Unicode(
        "starttls", help="starttls (port 587), ssl (465) or none (a trusted relay)"
    ).tag(config=True)
    smtp_sender = Unicode("gpulab@localhost", help="From: address of notifications").tag(
        config=True
    )
    smtp_username = Unicode(
        help="SMTP login (default $GPULAB_SMTP_USERNAME; empty = no login)"
    ).tag(config=True)
    notify_webhook_allow_hosts = List(
        Unicode(),
        help="webhook hosts allowed over http and on internal addresses (a local receiver; "
        "default: $GPULAB_NOTIFY_ALLOW_HOSTS, comma-separated; production: none)",
    ).tag(config=True)
    notify_attempts = Integer(5, help="tries of one delivery before it is failed").tag(config=True)
    notify_first_retry = Float(
        2.0, help="seconds before the first retry; each next pause is 4 times longer (<= 10 min)"
    ).tag(config=True)
    notify_max_age = Float(
        86400.0, help="an end older than this when first seen is recorded, not notified"
    ).tag(config=True)

    aliases: ClassVar[dict[Any, Any]] = service_aliases(
        "GatewayApp", namespace="namespace", kubeconfig="kubeconfig"
    )

    @default("namespace")
    def _namespace_default(self) -> str:
        for var in ("GPULAB_NAMESPACE", "POD_NAMESPACE"):
            if os.environ.get(var):
                return os.environ[var]
        path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
        with contextlib.suppress(OSError):
            with open(path) as fh:
                return fh.read().strip()
        return "default"

    @default("kubeconfig")
    def _kubeconfig_default(self) -> str:
        return os.environ.get("KUBECONFIG", "")

    @default("public_url")
    def _public_url_default(self) -> str:
        return os.environ.get("GPULAB_GATEWAY_PUBLIC_URL", "")

    @default("smtp_host")
    def _smtp_host_default(self) -> str:
        return os.environ.get("GPULAB_SMTP_HOST", "")

    @default("smtp_username")
    def _smtp_username_default(self) -> str:
        return os.environ.get("GPULAB_SMTP_USERNAME", "")

    @default("notify_webhook_allow_hosts")
    def _allow_hosts_default(self) -> list[str]:
        raw = os.environ.get("GPULAB_NOTIFY_ALLOW_HOSTS", "")
        return [h.strip() for h in raw.split(",") if h.strip()]

    def notify_config(self) -> NotifyConfig:
        smtp = None
        if self.smtp_host:
            if self.smtp_security not in ("starttls", "ssl", "none"):
                raise ValueError(f"smtp_security {self.smtp_security!r}: starttls, ssl or none")
            smtp = SmtpConfig(
                host=self.smtp_host,
                port=self.smtp_port,
                sender=self.smtp_sender,
                security=self.smtp_security,  # type: ignore[arg-type]
                username=self.smtp_username,
                password=os.environ.get("GPULAB_SMTP_PASSWORD", ""),
            )
        return NotifyConfig(
            smtp=smtp,
            base_url=self.public_url or None,
            allow_hosts=tuple(self.notify_webhook_allow_hosts),
            backoff=Backoff(attempts=max(1, self.notify_attempts), first=self.notify_first_retry),
            max_age=self.notify_max_age,
        )

    @default("culler_url")
    def _culler_url_default(self) -> str:
        return os.environ.get("GPULAB_CULLER_PUBLIC_URL", "")

    @default("s3_public_endpoint")
    def _s3_public_default(self) -> str:
        return os.environ.get("GPULAB_S3_PUBLIC_ENDPOINT", "")

    async def build(self) -> tuple[web.Application, Gateway, ClusterCache, Any]:
        logger = logging.getLogger("gpulab.jobs.gateway")
        policy_file = PolicyFile(self.require_policy(), logger)
        kube = await Kube.connect(
            self.kubeconfig or None,
            user_agent=USER_AGENT,
            request_timeout=self.kube_timeout,
            namespace=self.namespace,
            retry=Retry(attempts=max(1, self.kube_retry_attempts), budget=self.kube_retry_budget),
        )
        queues = await kueue_queues(kube, policy_file)
        cache = ClusterCache(kube, page_size=self.list_page_size, kueue=queues is not None)
        storage = None
        try:
            sync = JobStorage.from_policy(
                policy_file.policy.s3, presign_endpoint_url=self.s3_public_endpoint or None
            )
            storage = AsyncJobStorage(sync)
        except StorageConfigError as exc:
            self.log.warning("S3 is not configured (%s): submits answer 503", exc)
        catalogue = catalogue_from_policy(policy_file.policy)
        gateway = Gateway(
            kube=kube,
            cache=cache,
            policy_file=policy_file,
            storage=storage,
            catalogue=catalogue,
            public_url=self.public_url or None,
            homes=HomeClaims(kube, page_size=self.list_page_size),
            queues=queues,
            culler_url=self.culler_url or None,
        )
        notifier = None
        if self.notify_enabled:
            notifier = Notifier(
                cache=cache,
                store=NotifyStore(kube),
                annotate=gateway.annotate,
                config=self.notify_config(),
            )
        hub_auth = HubOAuth.instance(api_url=self.hub_api_url, cache_max_age=30)
        resolver = IdentityResolver(
            hub_auth,
            self.hub_api_url,
            self.api_token,
            max_age=self.identity_max_age,
        )
        app = make_app(
            gateway,
            resolver,
            hub_auth,
            self.service_prefix,
            authenticate_metrics=self.authenticate_prometheus,
            notifier=notifier,
        )
        return app, gateway, cache, (policy_file, catalogue, storage, kube)

    async def serve(self) -> None:
        set_component("jobs-gateway")
        app, gateway, cache, (policy_file, catalogue, storage, kube) = await self.build()
        cache.start()
        gateway.homes.start()
        await catalogue.start()
        if storage is not None:
            try:
                await storage.ensure_bucket()
            except Exception as exc:  # noqa: BLE001 - S3 may come later; submits then retry
                self.log.warning("could not ensure the S3 bucket: %s", type(exc).__name__)
        server = self.listen(app, max_body_size=MAX_BODY, xheaders=True)
        synced = await cache.wait_synced(None)
        # Not required (a create of an existing claim is answered 409), but without it the
        # first submits after a start would each ask.
        await gateway.homes.wait_synced(30)
        await gateway.load_tombstones()
        gateway.ready = True
        self.log.info(
            "jobs gateway on %s%s (namespace %s, cache %s, %d jobs)",
            self.service_url,
            self.service_prefix,
            self.namespace,
            "synced" if synced else "NOT synced yet",
            len(cache.jobs),
        )
        background = Background()
        background.start("policy-watch", policy_file.watch(self.policy_interval))
        background.start("half-made-jobs", gateway.reconcile_forever(self.half_made_grace))
        notifier = app.settings.get("notifier")
        if notifier is not None:
            background.start("notify", notifier.run_forever())
        background.start(
            "scheduled-run-credentials", app.settings["definitions"].keep_credentials_forever()
        )
        await until_stopped()
        server.stop()
        await background.stop()
        if notifier is not None:
            await notifier.stop()
        await cache.stop()
        await gateway.homes.stop()
        with contextlib.suppress(Exception):
            await catalogue.stop()
        await kube.close()


def make_app(
    gateway: Gateway,
    resolver: IdentityResolver,
    hub_auth: HubOAuth,
    prefix: str,
    *,
    authenticate_metrics: bool = True,
    notifier: Notifier | None = None,
) -> web.Application:
    metrics = metrics_route(
        prefix, hub_auth, gateway_registry(gateway.cache.index), authenticate=authenticate_metrics
    )
    app = web.Application(
        [
            metrics,
            *image_routes(prefix),
            *notify_routes(prefix),
            *gpu_idle_routes(prefix),
            *routes(prefix),
        ],  # type: ignore[list-item]
        gateway=gateway,
        notifier=notifier,
        definitions=Definitions(gateway),
        resolver=resolver,
        hub_auth=hub_auth,
        prefix=prefix,
        openapi=openapi(prefix),
        cookie_secret=os.urandom(32),
        xsrf_cookies=False,
    )
    return deny_framing(app)


def main(argv: list[str] | None = None) -> int:
    GatewayApp.launch_instance(argv)
    return 0
