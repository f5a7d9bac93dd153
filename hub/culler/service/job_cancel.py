"""Cancel a job for an admin on the dashboard, through the jobs gateway.

The gateway owns cancelling: it marks the Job cancelled (who and when), keeps it in its
owner's history and then deletes it. The culler calls the gateway's ``DELETE
/api/v1/jobs/<id>`` with its own service token, which holds gpulab's admin scope, and names
the admin who pressed the button in ``on_behalf_of`` (the gateway accepts that only from a
service holding the admin scope, and records it as the canceller) and the admin's ``reason``,
which the gateway keeps on the Job for its owner to read. The gateway's address is
asked of the hub (``GET /hub/api/services/jobs-gateway``, scope
``read:services!service=jobs-gateway``), so nothing has to be configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

__all__ = ["CancelAnswer", "JobCanceller"]

GATEWAY_SERVICE = "jobs-gateway"


@dataclass(frozen=True)
class CancelAnswer:
    """The gateway's answer: its status and JSON body (503 with an error when unreachable)."""

    status: int
    body: dict[str, Any]


class JobCanceller:
    def __init__(self, hub_api_url: str, token: str, *, timeout: float = 30.0) -> None:
        self.hub_api_url = hub_api_url.rstrip("/")
        self._http = httpx.AsyncClient(headers={"Authorization": f"token {token}"}, timeout=timeout)
        self._gateway: str | None = None

    async def close(self) -> None:
        await self._http.aclose()

    async def _gateway_api(self) -> str:
        """The gateway's API URL (its service URL and prefix, as the hub registered it)."""
        if self._gateway is None:
            r = await self._http.get(f"{self.hub_api_url}/services/{GATEWAY_SERVICE}")
            r.raise_for_status()
            model = r.json()
            base = str(model.get("url") or "").rstrip("/")
            prefix = str(model.get("prefix") or f"/services/{GATEWAY_SERVICE}/")
            if not base:
                raise httpx.HTTPError("the hub lists no URL for the jobs gateway")
            self._gateway = f"{base}{prefix.rstrip('/')}/api/v1"
        return self._gateway

    async def report_idle(self, job_id: str, since: str, reason: str, action: str) -> bool:
        """Tell the gateway a job's GPUs are idle (it records it; its notifier tells the
        owner); whether it took the report (a job already gone counts as taken)."""
        try:
            api = await self._gateway_api()
            r = await self._http.post(
                f"{api}/jobs/{quote(job_id, safe='')}/gpu-idle",
                json={"since": since, "reason": reason[:500], "action": action},
            )
        except httpx.HTTPError:
            self._gateway = None
            return False
        return r.status_code < 400 or r.status_code == 404

    async def cancel(self, job_id: str, admin: str, reason: str) -> CancelAnswer:
        try:
            api = await self._gateway_api()
            r = await self._http.delete(
                f"{api}/jobs/{quote(job_id, safe='')}",
                params={"on_behalf_of": admin, "reason": reason},
            )
        except httpx.HTTPError as exc:
            self._gateway = None  # ask the hub again next time (the gateway may have moved)
            return CancelAnswer(
                503, {"error": f"the jobs gateway cannot be reached ({type(exc).__name__})"}
            )
        try:
            body = r.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if r.status_code >= 400:
            body.setdefault("error", f"the jobs gateway answered {r.status_code}")
        return CancelAnswer(r.status_code, body)
