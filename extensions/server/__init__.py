"""gpulab's Jupyter server extension (``gpulab.extensions.server``).

Adds to the user's server:

* ``gpulab/api/...``: the jobs API (forwarded to the jobs gateway with the server's token),
  the cull status and "keep my server" (forwarded to the culler);
* ``gpulab/api/lab/...``: what the JupyterLab extension needs besides (``lab_api.py``);
* ``gpulab/jobs``: the jobs web page;
* a background reporter that samples kernel, terminal and GPU activity every
  ``GPULabExtension.report_interval`` seconds and posts it to the culler, then runs the
  idle-GPU-kernel reaper on the same sample.

Enabled by ``jupyter_server_config.d/gpulab.json`` (installed with the package) or
``--ServerApp.jpserver_extensions='{"gpulab.extensions.server": true}'``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tornado.ioloop import IOLoop

__all__ = ["_jupyter_server_extension_points", "_load_jupyter_server_extension"]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "gpulab.extensions.server"}]


def _home_for(root_dir: str) -> str:
    """The folder spec paths are relative to: ``$HOME`` when the root dir lies inside it (as in
    a gpulab pod, where both are the home volume), else the root dir itself."""
    root = Path(root_dir).resolve()
    home = os.environ.get("HOME", "")
    if home and root.is_relative_to(Path(home).resolve()):
        return str(Path(home).resolve())
    return str(root)


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from gpulab.extensions.activity import ActivitySampler
    from gpulab.extensions.gpu_probe import probe_from_env
    from gpulab.extensions.kernel_activity import KernelOutputMonitor

    from .config import GPULabExtension
    from .handlers import api_handlers
    from .lab_api import lab_handlers
    from .page import page_handlers
    from .reaping import KernelReaping
    from .reporter import ActivityReporter
    from .state import SETTINGS_KEY, ExtensionState
    from .upstream import Upstream

    config = GPULabExtension(parent=serverapp)
    token = config.api_token
    gateway = Upstream("jobs gateway", config.resolved_gateway_url, token, config.request_timeout)
    culler = Upstream("culler", config.resolved_culler_url, token, config.request_timeout)
    web_app = serverapp.web_app
    km = serverapp.kernel_manager
    sampler = ActivitySampler(km, None, probe_from_env(), activity=KernelOutputMonitor())
    reaping = KernelReaping(km)
    reporter = ActivityReporter(
        sampler, culler, config.report_interval, config.server_name, reaping
    )
    try:
        gpus = int(os.environ.get("GPULAB_GPUS", "0") or 0)
    except ValueError:
        gpus = 0
    state = ExtensionState(
        config=config,
        gateway=gateway,
        culler=culler,
        reporter=reporter,
        reaping=reaping,
        root_dir=str(Path(serverapp.root_dir).resolve()),
        home=_home_for(serverapp.root_dir),
        image=os.environ.get("GPULAB_IMAGE", ""),
        gpus=gpus,
    )
    web_app.settings[SETTINGS_KEY] = state
    base_url = web_app.settings.get("base_url", "/")
    web_app.add_handlers(
        ".*$", [*api_handlers(base_url), *lab_handlers(base_url), *page_handlers(base_url)]
    )

    def start() -> None:
        # Other extensions (jupyter_server_terminals) are loaded by now.
        sampler.terminal_manager = web_app.settings.get("terminal_manager")
        reporter.start()

    IOLoop.current().add_callback(start)
    serverapp.log.info(
        "gpulab: jobs page at %sgpulab/jobs; gateway %s; culler %s; reports every %.0f s",
        base_url,
        gateway.base_url or "(not configured)",
        culler.base_url or "(not configured)",
        config.report_interval,
    )
