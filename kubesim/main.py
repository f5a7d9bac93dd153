"""``KubeSim``: config + store + HTTP API + controllers, and the ``gpulab kubesim serve`` loop.

The controllers (nodes, scheduler, kubelet, job controller) live in
``gpulab.kubesim.controllers`` and are started with ``start_controllers(store, config)``; their
``stop()`` kills every pod process, so stopping KubeSim (or SIGINT/SIGTERM on ``serve``) never
leaves processes behind.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ipaddress
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from gpulab.kubesim import admission
from gpulab.kubesim.audit import Audit
from gpulab.kubesim.authn import MASTERS, TokenAuthenticator
from gpulab.kubesim.config import KubesimConfig, parse_nodes
from gpulab.kubesim.controllers import Controllers, start_controllers
from gpulab.kubesim.kueue.crds import KUEUE_GROUPS
from gpulab.kubesim.persist import Journal
from gpulab.kubesim.quota import QuotaController
from gpulab.kubesim.reboot import end_pods_of_earlier_run
from gpulab.kubesim.server import ApiServer
from gpulab.kubesim.store import Store
from gpulab.kubesim.tls import ServingCert, serving_cert


def kubeconfig(url: str, token: str | None = None, ca_pem: bytes | None = None) -> dict[str, Any]:
    cluster: dict[str, Any] = {"server": url}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubesim", "cluster": cluster}],
        "users": [{"name": "kubesim", "user": {"token": token} if token else {}}],
        "contexts": [
            {
                "name": "kubesim",
                "context": {"cluster": "kubesim", "user": "kubesim", "namespace": "default"},
            }
        ],
        "current-context": "kubesim",
        "preferences": {},
    }


class KubeSim:
    def __init__(self, config: KubesimConfig) -> None:
        self.config = config
        self.store = Store(
            history_window=config.history_window,
            bookmark_interval=config.bookmark_interval,
            journal=Journal(config.store_dir) if config.store_dir is not None else None,
        )
        self.audit = Audit(config.audit_log)
        self.controllers: Controllers | None = None
        self.api: ApiServer | None = None
        self._runner: web.AppRunner | None = None
        self._quota: QuotaController | None = None
        self.port = 0
        # Only with a token file: kubectl sends tokens over TLS only.
        self.tls: ServingCert | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.config.host}:{self.port}"

    @property
    def kubeconfig_path(self) -> Path:
        assert self.config.kubeconfig_path is not None
        return self.config.kubeconfig_path

    async def start(self) -> None:
        _require_loopback(self.config.host)
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        # Build the schema validators off the loop; the first requests may briefly wait.
        warm = asyncio.get_running_loop().run_in_executor(None, admission.warm_up)
        # Before the kubelet starts: a restored pod that was running belongs to processes
        # that are gone (the node "rebooted").
        if ended := end_pods_of_earlier_run(self.store):
            logging.getLogger(__name__).info("kubesim: %d pod(s) of an earlier run ended", ended)
        self._quota = QuotaController(self.store)
        self.controllers = await start_controllers(self.store, self.config)
        authenticator = None
        if self.config.token_auth_file is not None:
            authenticator = TokenAuthenticator.from_file(self.config.token_auth_file)
            self.tls = serving_cert(self.config.data_dir / "tls")
        self.api = ApiServer(
            self.store,
            log_dir=self.controllers.log_dir,
            audit=self.audit,
            authenticator=authenticator,
            hidden_groups=frozenset() if self.config.kueue else KUEUE_GROUPS,
            kueue=self.controllers.kueue,
        )
        self._runner = web.AppRunner(
            self.api.make_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(
            self._runner,
            self.config.host,
            self.config.port,
            ssl_context=self.tls.server_context() if self.tls is not None else None,
        )
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[union-attr]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.kubeconfig_path.parent.mkdir(parents=True, exist_ok=True)
        # With a token file, the kubeconfig carries the first system:masters token (as an
        # admin.conf does), so it is a credential: owner-only.
        admin = authenticator.tokens_of_group(MASTERS)[:1] if authenticator else []
        if admin:
            self.kubeconfig_path.touch(mode=0o600)
            self.kubeconfig_path.chmod(0o600)
        self.kubeconfig_path.write_text(
            yaml.safe_dump(
                kubeconfig(
                    self.url,
                    admin[0] if admin else None,
                    self.tls.cert.read_bytes() if self.tls is not None else None,
                ),
                sort_keys=False,
            )
        )
        await warm

    async def stop(self) -> None:
        # End watches first so that open streams finish instead of being cut mid-event.
        self.store.close()
        if self.controllers is not None:
            await self.controllers.stop()
            self.controllers = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._quota is not None:
            self._quota.stop()
        if self.api is not None and self.api.authorizer is not None:
            self.api.authorizer.close()
        self.audit.close()
        # Last: every change the controllers made while stopping is in the snapshot.
        self.store.compact()

    async def __aenter__(self) -> KubeSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _require_loopback(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise SystemExit(
            f"kubesim: refusing to listen on {host!r}: it has no authentication, so it only "
            "serves on a loopback address (127.0.0.1, ::1 or localhost)"
        )


def config_from_args(args: argparse.Namespace) -> KubesimConfig:
    kwargs: dict[str, Any] = {"host": args.host, "port": args.port}
    if args.data_dir:
        kwargs["data_dir"] = Path(args.data_dir)
    if args.kubeconfig:
        kwargs["kubeconfig_path"] = Path(args.kubeconfig)
    if args.nodes:
        kwargs["nodes"] = parse_nodes(args.nodes)
    if args.audit_log:
        kwargs["audit_log"] = Path(args.audit_log)
    if args.history_window:
        kwargs["history_window"] = args.history_window
    if getattr(args, "token_auth_file", None):
        kwargs["token_auth_file"] = Path(args.token_auth_file)
    if getattr(args, "store_dir", None):
        kwargs["store_dir"] = Path(args.store_dir)
    if getattr(args, "kueue", False):
        kwargs["kueue"] = True
    if getattr(args, "kueue_no_fair_sharing", False):
        kwargs["kueue_fair_sharing"] = False
    if getattr(args, "cron_clock_speed", 1.0) != 1.0:
        kwargs["cron_clock_speed"] = args.cron_clock_speed
    return KubesimConfig(**kwargs)


async def _serve(config: KubesimConfig) -> None:
    sim = KubeSim(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await sim.start()
    print(f"kubesim ready at {sim.url} kubeconfig={sim.kubeconfig_path}", flush=True)
    try:
        await stop.wait()
    finally:
        await sim.stop()


def serve_forever(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = config_from_args(args)
    _require_loopback(config.host)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(config))
    print("kubesim stopped", file=sys.stderr, flush=True)
    return 0
