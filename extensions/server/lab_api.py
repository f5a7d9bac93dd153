"""What gpulab's JupyterLab extension asks its server, beside the jobs API of ``handlers.py``.

Under ``{base_url}gpulab/api/lab/``:

* ``GET parameters?path=NB``: the ``parameters`` cell of a notebook (through the contents
  manager, so the server's own path rules apply), for the "Run as job" dialog;
* ``GET status``: this server's GPUs (count, type, utilisation from the last activity sample),
  its image, the caller's quota (the gateway's ``/me``), the culler's last answer and the
  idle-GPU-kernel reaper's warnings (a kernel holding GPU memory while idle): the dialog's defaults, the status bar item and the
  notifications read this one answer;
* ``POST jobs/{id}/download``: a job's outputs into ``~/outputs/<id>/`` (as the panel does).

"Keep my server" and the cull status are ``handlers.py``'s ``keep`` and ``cull-status``.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import httpx
from gpulab.extensions.panel import PanelError, output_destination
from jupyter_core.utils import ensure_async
from tornado import web

from .handlers import API_PREFIX, GPULabHandler
from .notebook_parameters import parameters_of
from .upstream import UpstreamError

__all__ = ["lab_handlers"]

_JOB_ID = r"(?P<job_id>[A-Za-z0-9][A-Za-z0-9._-]{0,127})"
MAX_DOWNLOAD_FILES = 1000


class ParametersHandler(GPULabHandler):
    @web.authenticated
    async def get(self) -> None:
        path = self.get_argument("path", "").strip().lstrip("/")
        if not path.endswith(".ipynb"):
            self.reply(200, {"path": path, "parameters": []})  # scripts take arguments
            return
        try:
            model = await ensure_async(
                self.contents_manager.get(path, content=True, type="notebook")
            )
        except web.HTTPError as exc:
            if exc.status_code == 404:
                self.reply(404, {"error": f"{path!r}: no such notebook", "field": "notebook"})
                return
            raise
        content = model.get("content")
        notebook = content if isinstance(content, dict) else {}
        found = [p.as_dict() for p in parameters_of(notebook)]
        self.reply(200, {"path": path, "parameters": found})


class LabStatusHandler(GPULabHandler):
    @web.authenticated
    async def get(self) -> None:
        state = self.gpulab
        report = state.reporter.last_report
        samples = (report or {}).get("gpus") or []
        utilisation = [s.get("utilization_pct") for s in samples]
        me: dict[str, Any] | None = None
        me_error = ""
        if state.gateway.configured:
            try:
                response = await state.gateway.request("GET", "api/v1/me")
                if response.status_code == 200:
                    me = response.json()
                else:
                    me_error = f"the jobs gateway answered {response.status_code}"
            except UpstreamError as exc:
                me_error = exc.message
        else:
            me_error = "no jobs gateway configured"
        self.reply(
            200,
            {
                "server": {
                    "name": state.config.server_name,
                    "image": state.image,
                    "gpus": state.gpus,
                    "gpu_type": self._gpu_type(),
                    "utilisation_pct": utilisation,
                    "sampled_at": (report or {}).get("sampled_at"),
                },
                "me": me,
                "me_error": me_error,
                "cull": {
                    "culler": state.culler.configured,
                    "status": state.reporter.last_status,
                    "report_interval": state.reporter.interval,
                },
                # The idle-GPU-kernel reaper's warnings and actions, newest last.
                "kernels": {
                    "warned": state.reaping.pending_warnings(),
                    "events": list(state.reaping.events),
                },
            },
        )

    @staticmethod
    def _gpu_type() -> str:
        return os.environ.get("GPULAB_GPU_TYPE", "")


class DownloadHandler(GPULabHandler):
    """Every output file of a job into ``~/outputs/<job id>/`` (never outside that folder)."""

    @web.authenticated
    async def post(self, job_id: str) -> None:
        state = self.gpulab
        gateway = state.gateway
        base = f"api/v1/jobs/{quote(job_id, safe='')}/outputs"
        try:
            listing = await gateway.request("GET", base)
        except UpstreamError as exc:
            raise web.HTTPError(exc.status, exc.message) from None
        if listing.status_code != 200:
            self.relay(
                listing.status_code, listing.content, listing.headers.get("Content-Type", "")
            )
            return
        items = (listing.json() or {}).get("items") or []
        written: list[str] = []
        async with httpx.AsyncClient(timeout=state.config.request_timeout) as fetcher:
            for item in items[:MAX_DOWNLOAD_FILES]:
                path = str(item.get("path") or "")
                try:
                    dest = output_destination(state.home, job_id, path)
                except PanelError as exc:
                    self.log.warning("gpulab: skipped output %r of %s: %s", path, job_id, exc)
                    continue
                quoted = "/".join(quote(p, safe="") for p in path.split("/"))
                try:
                    answer = await gateway.request(
                        "GET", f"{base}/{quoted}", params={"redirect": "0"}
                    )
                except UpstreamError as exc:
                    raise web.HTTPError(exc.status, exc.message) from None
                url = answer.json().get("url", "") if answer.status_code == 200 else ""
                if not url.startswith(("http://", "https://")):
                    raise web.HTTPError(502, f"the jobs gateway gave no download URL for {path}")
                dest.parent.mkdir(parents=True, exist_ok=True)
                async with fetcher.stream("GET", url) as body:
                    if body.status_code != 200:
                        raise web.HTTPError(502, f"{path}: storage answered {body.status_code}")
                    with dest.open("wb") as out:
                        async for chunk in body.aiter_bytes():
                            out.write(chunk)
                written.append(path)
        # Lab paths are relative to the server's root folder, which may lie inside the home;
        # then the folder may be out of Lab's reach ("lab_folder": null).
        target = PurePosixPath(Path(state.home).as_posix()) / "outputs" / job_id
        try:
            folder: str | None = target.relative_to(Path(state.root_dir).as_posix()).as_posix()
        except ValueError:
            folder = None
        self.reply(
            200,
            {
                "home_folder": f"outputs/{job_id}",
                "lab_folder": folder,
                "files": written,
            },
        )


def lab_handlers(base_url: str) -> list[tuple[str, type]]:
    p = base_url.rstrip("/") + "/" + API_PREFIX + "/lab"
    return [
        (f"{p}/parameters", ParametersHandler),
        (f"{p}/status", LabStatusHandler),
        (f"{p}/jobs/{_JOB_ID}/download", DownloadHandler),
    ]
