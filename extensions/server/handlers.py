"""REST endpoints under ``{base_url}gpulab/api/`` that forward to the jobs gateway and the culler.

They authenticate like every Jupyter handler (``@web.authenticated``; POST/DELETE need the XSRF
token unless the request carries an API token) and call the services with the server's own
``$JUPYTERHUB_API_TOKEN``, which never reaches the browser. Answers from the gateway are passed
through with their status and JSON body (a 422 stays a 422 with its ``problems``); a service
that is not configured answers 503, one that cannot be reached 502, both as ``{error}``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

import yaml
from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.iostream import StreamClosedError

from .framing import NoFraming
from .paths import PathProblem, confine_spec_paths
from .state import SETTINGS_KEY, ExtensionState
from .upstream import UpstreamError

__all__ = ["API_PREFIX", "api_handlers"]

API_PREFIX = "gpulab/api"
MAX_SPEC_BYTES = 64 * 1024
_JOB_ID = r"(?P<job_id>[A-Za-z0-9][A-Za-z0-9._-]{0,127})"


class GPULabHandler(NoFraming, APIHandler):
    """JSON errors as ``{error, problems?}``; polling the API is not user activity."""

    _track_activity = False

    @property
    def gpulab(self) -> ExtensionState:
        return self.settings[SETTINGS_KEY]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "log_message", None) or getattr(exc, "reason", None)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": str(message or self._reason)}))

    def reply(self, status: int, body: Any) -> None:
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))

    def relay(self, status: int, content: bytes, content_type: str) -> None:
        """Pass a service's answer through: JSON as is, anything else wrapped as ``{error}``."""
        if "json" in content_type:
            try:
                body = json.loads(content) if content else None
            except ValueError:
                body = {"error": content[:500].decode(errors="replace")}
        elif status >= 400:
            body = {"error": content[:500].decode(errors="replace").strip() or self._reason}
        else:
            body = {"text": content.decode(errors="replace")}
        if body is None:
            self.set_status(status)
            self.finish()
            return
        self.reply(status, body)

    async def forward(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        upstream: str = "gateway",
    ) -> None:
        service = self.gpulab.gateway if upstream == "gateway" else self.gpulab.culler
        try:
            response = await service.request(
                method, path, params=params, json_body=body, headers=headers
            )
        except UpstreamError as exc:
            raise web.HTTPError(exc.status, exc.message) from None
        self.relay(response.status_code, response.content, response.headers.get("Content-Type", ""))


def _q(job_id: str) -> str:
    return quote(job_id, safe="")


class MeHandler(GPULabHandler):
    @web.authenticated
    async def get(self) -> None:
        await self.forward("GET", "api/v1/me")


class ImagesHandler(GPULabHandler):
    """The catalogue's images the owner may use (the Run as job dialog's image list)."""

    @web.authenticated
    async def get(self) -> None:
        await self.forward("GET", "api/v1/images")


class NotifyHandler(GPULabHandler):
    """The owner's notification settings, relayed to the gateway (``action``: "", ``secret``
    or ``test``)."""

    @web.authenticated
    async def get(self, action: str = "") -> None:
        if action:
            raise web.HTTPError(405, "GET only for the settings")
        await self.forward("GET", "api/v1/notify")

    @web.authenticated
    async def put(self, action: str = "") -> None:
        if action:
            raise web.HTTPError(405, "PUT only for the settings")
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, "the body is not JSON") from None
        await self.forward("PUT", "api/v1/notify", body=body)

    @web.authenticated
    async def post(self, action: str = "") -> None:
        if action not in ("secret", "test"):
            raise web.HTTPError(405, "POST only to secret or test")
        await self.forward("POST", f"api/v1/notify/{action}")


class JobsHandler(GPULabHandler):
    @web.authenticated
    async def get(self) -> None:
        # Every parameter goes on: the gateway checks them, so each client gets its answers.
        params = {k: self.get_argument(k) for k in self.request.query_arguments}
        await self.forward("GET", "api/v1/jobs", params=params)

    @web.authenticated
    async def post(self) -> None:
        spec = self._confined(self._spec())
        if isinstance(spec, PathProblem):
            self.reply(422, {"error": "invalid job spec", "problems": [spec.as_dict()]})
            return
        headers = {}
        key = self.request.headers.get("Idempotency-Key", "")
        if key:
            headers["Idempotency-Key"] = key[:200]
        await self.forward("POST", "api/v1/jobs", body=spec, headers=headers)

    def _confined(self, spec: dict[str, Any]) -> dict[str, Any] | PathProblem:
        """``spec`` with its paths checked in this server's home and the running server's
        image when it names none (as the panel shows); the path's problem otherwise."""
        state = self.gpulab
        try:
            spec = confine_spec_paths(spec, state.root_dir, state.home)
        except PathProblem as problem:
            return problem
        if not spec.get("image") and state.image:
            spec["image"] = state.image
        return spec

    def _spec(self) -> dict[str, Any]:
        raw = self.request.body or b""
        if len(raw) > MAX_SPEC_BYTES:
            raise web.HTTPError(413, f"job spec larger than {MAX_SPEC_BYTES} bytes")
        ctype = self.request.headers.get("Content-Type", "application/json")
        try:
            if "yaml" in ctype:
                spec = yaml.safe_load(raw.decode("utf-8"))
            else:
                spec = json.loads(raw or b"null")
        except (ValueError, yaml.YAMLError) as exc:
            raise web.HTTPError(400, f"the job spec is not valid JSON/YAML: {exc}") from None
        if not isinstance(spec, dict):
            raise web.HTTPError(
                422, "the job spec must be a mapping with the fields of docs/jobs.md"
            )
        return spec


class ValidateHandler(JobsHandler):
    """``POST jobs/validate``: the gateway's dry run, after this server's own path checks."""

    @web.authenticated
    async def post(self) -> None:
        spec = self._confined(self._spec())
        if isinstance(spec, PathProblem):
            self.reply(200, {"valid": False, "problems": [spec.as_dict()]})
            return
        await self.forward("POST", "api/v1/jobs/validate", body=spec)


class DefinitionsHandler(JobsHandler):
    """Saved definitions (docs/jobs.md): the spec inside gets this server's checks."""

    @web.authenticated
    async def get(self) -> None:
        await self.forward("GET", "api/v1/definitions")

    @web.authenticated
    async def post(self) -> None:
        body = self._spec()
        spec = body.get("spec")
        if isinstance(spec, dict):
            spec = self._confined(spec)
            if isinstance(spec, PathProblem):
                problem = spec.as_dict()
                problem["field"] = f"spec.{problem.get('field') or ''}".rstrip(".")
                self.reply(422, {"error": "invalid job spec", "problems": [problem]})
                return
            body = {**body, "spec": spec}
        await self.forward("POST", "api/v1/definitions", body=body)


class DefinitionHandler(GPULabHandler):
    @web.authenticated
    async def get(self, name: str) -> None:
        await self.forward("GET", f"api/v1/definitions/{_q(name)}")

    @web.authenticated
    async def delete(self, name: str) -> None:
        await self.forward("DELETE", f"api/v1/definitions/{_q(name)}")


class DefinitionActionHandler(GPULabHandler):
    @web.authenticated
    async def post(self, name: str, action: str) -> None:
        await self.forward("POST", f"api/v1/definitions/{_q(name)}/{action}")


class JobHandler(GPULabHandler):
    @web.authenticated
    async def get(self, job_id: str) -> None:
        await self.forward("GET", f"api/v1/jobs/{_q(job_id)}")

    @web.authenticated
    async def delete(self, job_id: str) -> None:
        await self.forward("DELETE", f"api/v1/jobs/{_q(job_id)}")


class CancelHandler(GPULabHandler):
    """``POST .../cancel``: the same as ``DELETE .../{id}`` for clients that prefer POST."""

    @web.authenticated
    async def post(self, job_id: str) -> None:
        await self.forward("DELETE", f"api/v1/jobs/{_q(job_id)}")


class ResubmitHandler(GPULabHandler):
    @web.authenticated
    async def post(self, job_id: str) -> None:
        await self.forward("POST", f"api/v1/jobs/{_q(job_id)}/resubmit")


class OutputsHandler(GPULabHandler):
    @web.authenticated
    async def get(self, job_id: str) -> None:
        # a sweep's run (``?run=K``) goes on: the gateway checks it
        run = self.get_argument("run", "")
        params = {"run": run} if run else None
        await self.forward("GET", f"api/v1/jobs/{_q(job_id)}/outputs", params=params)


class OutputHandler(GPULabHandler):
    """``GET .../outputs/{path}``: 307 to the presigned URL (``?redirect=0``: ``{url, ...}``)."""

    @web.authenticated
    async def get(self, job_id: str, path: str) -> None:
        parts = path.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise web.HTTPError(400, f"{path!r} is not an output path")
        quoted = "/".join(quote(p, safe="") for p in parts)
        try:
            response = await self.gpulab.gateway.request(
                "GET", f"api/v1/jobs/{_q(job_id)}/outputs/{quoted}", params={"redirect": "0"}
            )
        except UpstreamError as exc:
            raise web.HTTPError(exc.status, exc.message) from None
        ctype = response.headers.get("Content-Type", "")
        if response.status_code != 200 or self.get_argument("redirect", "1") == "0":
            self.relay(response.status_code, response.content, ctype)
            return
        url = response.json().get("url", "")
        if not url.startswith(("http://", "https://")):
            raise web.HTTPError(502, "the jobs gateway gave no download URL")
        self.set_header("Cache-Control", "no-store")
        self.redirect(url, status=307)


class LogsHandler(GPULabHandler):
    """``GET .../logs?follow=1&tail=N&rank=K``: the gateway's ``text/plain`` stream, chunk by
    chunk (``rank``: a multi-node job's rank, default 0)."""

    _pump: asyncio.Future[None] | None = None

    @web.authenticated
    async def get(self, job_id: str) -> None:
        params: dict[str, str] = {}
        follow = self.get_argument("follow", "0") in ("1", "true", "yes")
        params["follow"] = "1" if follow else "0"
        tail = self.get_argument("tail", "")
        if tail:
            if not tail.isdigit():
                raise web.HTTPError(400, f"tail={tail!r}: give a number of lines")
            params["tail"] = tail
        rank = self.get_argument("rank", "")
        if rank:
            if not rank.isdigit():
                raise web.HTTPError(400, f"rank={rank[:20]!r}: give a rank number")
            params["rank"] = rank
        run = self.get_argument("run", "")
        if run:
            params["run"] = run  # a sweep's run: the gateway checks it
        self._pump = asyncio.ensure_future(self._stream(job_id, params, follow))
        try:
            await self._pump
        except (asyncio.CancelledError, StreamClosedError):
            pass  # the browser went away: the upstream stream is closed with the task

    def on_connection_close(self) -> None:
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()

    async def _stream(self, job_id: str, params: dict[str, str], follow: bool) -> None:
        gateway = self.gpulab.gateway
        timeout = self.gpulab.config.follow_timeout if follow else None
        try:
            async with gateway.stream(
                "GET", f"api/v1/jobs/{_q(job_id)}/logs", params=params, read_timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    content = await response.aread()
                    self.relay(
                        response.status_code, content, response.headers.get("Content-Type", "")
                    )
                    return
                self.set_status(response.status_code)
                self.set_header("Content-Type", "text/plain; charset=utf-8")
                self.set_header("Cache-Control", "no-store")
                self.set_header("X-Accel-Buffering", "no")
                async for chunk in response.aiter_raw():
                    self.write(chunk)
                    await self.flush()
        except UpstreamError as exc:
            raise web.HTTPError(exc.status, exc.message) from None
        except StreamClosedError:
            return  # the browser went away
        except Exception as exc:  # the gateway dropped the stream mid-way
            if self._headers_written:
                self.log.warning("gpulab: log stream of %s ended: %s", job_id, exc)
            else:
                raise web.HTTPError(502, f"log stream failed: {type(exc).__name__}") from None
        if not self._finished:
            self.finish(set_content_type="text/plain; charset=utf-8")


class CullStatusHandler(GPULabHandler):
    """The last status the culler answered to a report (or asked now), plus kernel warnings."""

    @web.authenticated
    async def get(self) -> None:
        state = self.gpulab
        reporter = state.reporter
        status = reporter.last_status
        if status is None and state.culler.configured:
            try:
                response = await state.culler.request(
                    "GET", "api/v1/servers/me", params={"server": state.config.server_name}
                )
                if response.status_code == 200:
                    status = response.json()
                    reporter.remember(status)
            except UpstreamError:
                status = None
        self.reply(
            200,
            {
                "known": status is not None,
                "culler": state.culler.configured,
                "status": status,
                "reporter": reporter.to_json(),
                "kernels": state.reaping.to_json(),
            },
        )


class KeepHandler(GPULabHandler):
    """ "Keep my server": the culler decides within the policy's bounds (200 or 409)."""

    @web.authenticated
    async def post(self) -> None:
        state = self.gpulab
        try:
            response = await state.culler.request(
                "POST", "api/v1/servers/me/keep", params={"server": state.config.server_name}
            )
        except UpstreamError as exc:
            raise web.HTTPError(exc.status, exc.message) from None
        if response.status_code in (200, 409) and "json" in response.headers.get(
            "Content-Type", ""
        ):
            body = response.json()
            if isinstance(body, dict) and "state" in body:
                state.reporter.remember({k: v for k, v in body.items() if k != "error"})
        self.relay(response.status_code, response.content, response.headers.get("Content-Type", ""))


class FrontEndsHandler(GPULabHandler):
    """``GET kernels/{id}/front-ends``: ``{connections}``, the front ends (browser tabs) connected
    to a kernel now. The panel asks before each refresh; unlike ``api/kernels/{id}`` the
    question is not counted as the server's (browser) activity."""

    @web.authenticated
    def get(self, kernel_id: str) -> None:
        km = self.kernel_manager
        if kernel_id not in km:
            raise web.HTTPError(404, f"no kernel {kernel_id}")
        self.reply(200, {"connections": int(km.kernel_model(kernel_id).get("connections", 0))})


def api_handlers(base_url: str) -> list[tuple[str, type]]:
    p = base_url.rstrip("/") + "/" + API_PREFIX
    jobs = f"{p}/jobs/{_JOB_ID}"
    return [
        (f"{p}/me", MeHandler),
        (f"{p}/images", ImagesHandler),
        (f"{p}/notify/?(?P<action>secret|test)?", NotifyHandler),
        (f"{p}/jobs", JobsHandler),
        (f"{p}/jobs/validate", ValidateHandler),
        (f"{p}/definitions", DefinitionsHandler),
        (f"{p}/definitions/(?P<name>[a-z0-9-]{{1,63}})", DefinitionHandler),
        (
            f"{p}/definitions/(?P<name>[a-z0-9-]{{1,63}})/(?P<action>pause|resume|run-now)",
            DefinitionActionHandler,
        ),
        (f"{jobs}", JobHandler),
        (f"{jobs}/cancel", CancelHandler),
        (f"{jobs}/resubmit", ResubmitHandler),
        (f"{jobs}/logs", LogsHandler),
        (f"{jobs}/outputs", OutputsHandler),
        (f"{jobs}/outputs/(?P<path>.+)", OutputHandler),
        (f"{p}/cull-status", CullStatusHandler),
        (f"{p}/keep", KeepHandler),
        (f"{p}/kernels/(?P<kernel_id>[0-9a-f-]{{8,64}})/front-ends", FrontEndsHandler),
    ]
