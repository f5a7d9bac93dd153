"""Batch jobs from a notebook: ``from gpulab import jobs; jobs.panel()``.

Thin helpers over :class:`gpulab.extensions.client.GatewayClient` (the gateway URL and the
server's token come from the environment inside a gpulab server)::

    job = jobs.submit({"name": "train", "notebook": "work/train.ipynb", "gpus": 1})
    for j in jobs.list(state="Running"): ...
    print(jobs.logs(job["id"]))
"""

from __future__ import annotations

import builtins
import html
from typing import Any

__all__ = ["cancel", "get", "list", "logs", "panel", "submit"]


def _client(hub_url: str | None = None, token: str | None = None):
    from gpulab.extensions.client import ClientConfig, GatewayClient

    return GatewayClient(ClientConfig.discover(hub_url, token))


def panel(auto_refresh: float | None = 5.0, **kwargs: Any):
    """The jobs panel widget: submit this notebook or a script, watch, cancel, download."""
    from gpulab.extensions.panel import JobsPanel

    user_ns = None
    try:  # the running notebook's namespace (for __session__), when inside IPython
        from IPython import get_ipython

        shell = get_ipython()
        user_ns = getattr(shell, "user_ns", None)
    except ImportError:
        pass
    p = JobsPanel(user_ns=user_ns, auto_refresh=auto_refresh or 5.0, **kwargs)
    try:
        p.refresh()
    except Exception as exc:  # noqa: BLE001 - the panel still opens and shows why
        p.status_line.value = f"<i>could not list jobs: {html.escape(str(exc))}</i>"
    if auto_refresh:
        p.start_auto_refresh()
    return p.widget


def submit(spec: dict | str, idempotency_key: str | None = None, **conn: Any) -> dict:
    with _client(**conn) as c:
        return c.submit(spec, idempotency_key)


def list(**filters: Any) -> builtins.list[dict]:  # noqa: A001 - jobs.list() reads naturally
    conn = {k: filters.pop(k) for k in ("hub_url", "token") if k in filters}
    with _client(**conn) as c:
        return builtins.list(c.list(**filters))


def get(job_id: str, **conn: Any) -> dict:
    with _client(**conn) as c:
        return c.get(job_id)


def cancel(job_id: str, **conn: Any) -> dict:
    with _client(**conn) as c:
        return c.cancel(job_id)


def logs(job_id: str, follow: bool = False, **conn: Any) -> str:
    with _client(**conn) as c:
        return "".join(c.logs(job_id, follow=follow))
