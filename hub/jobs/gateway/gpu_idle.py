"""``POST /api/v1/jobs/<id>/gpu-idle``: the culler says a job's GPUs have been idle past its
owner's policy time (``jobs.gpu_idle_report_after``; docs/culling.md, "Jobs holding idle GPUs").

Only a token with gpulab's admin scope may call it (the culler's service token). The gateway
records the finding on the Job (``gpulab.io/gpu-idle``: since, reason, action); its notifier
then tells the owner once per idle episode (event ``gpu_idle``). Stopping the job, when the
policy says so (``jobs.kill_gpu_idle``), is the culler's ordinary cancel with a reason.
"""

from __future__ import annotations

import json
from typing import Any

from ...culler.admin_actions import check_reason
from ...field_errors import FieldError
from ...workload.labels import GPU_IDLE_ANNOTATION
from .errors import ApiError, from_kube
from .handlers import BaseHandler
from .kube import KubeError

__all__ = ["gpu_idle_routes"]


class GpuIdleHandler(BaseHandler):
    service_methods = ("POST",)

    async def post(self, job_id: str) -> None:
        if not self.ident.admin:
            raise ApiError(403, "only gpulab's culler (or an admin) reports idle GPUs")
        ref = self.gateway.visible(self.ident, job_id)
        record = _record(self.request.body)
        current = (ref.job.get("metadata") or {}).get("annotations", {}).get(GPU_IDLE_ANNOTATION)
        if not ref.gone and current != json.dumps(record, sort_keys=True):
            try:
                await self.gateway.annotate(
                    job_id, {GPU_IDLE_ANNOTATION: json.dumps(record, sort_keys=True)}
                )
            except KubeError as exc:
                raise from_kube(exc, "recording the idle GPUs") from None
        self.write_json(record)


def _record(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        doc = None
    if not isinstance(doc, dict):
        raise ApiError(400, "the body is not a JSON object", [FieldError("body", "is not", "{}")])
    reason, problems = check_reason(doc.get("reason"))
    since = doc.get("since")
    if not isinstance(since, str) or not 0 < len(since) <= 40:
        problems = [*problems, FieldError("since", "is not a time", "an ISO 8601 time")]
    action = doc.get("action")
    if action not in ("report", "kill"):
        problems = [*problems, FieldError("action", "is not report or kill", "report, kill")]
    if problems or reason is None:
        raise ApiError(400, "bad idle-GPU report", problems)
    return {"since": since, "reason": reason, "action": action}


def gpu_idle_routes(prefix: str) -> list[tuple[str, type]]:
    return [(prefix + r"api/v1/jobs/(?P<job_id>[^/]+)/gpu-idle", GpuIdleHandler)]
