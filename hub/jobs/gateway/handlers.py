"""The REST API's tornado handlers (docs/gateway.md, "REST API").

Every handler authenticates first (:meth:`BaseHandler.prepare`): the caller's identity comes
from the hub (token or OAuth cookie), never from the request. Errors are JSON
``{error, problems}``; anything unexpected is logged and answered 500 without details.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from tornado import web
from tornado.iostream import StreamClosedError

from ...culler.admin_actions import check_reason
from ..spec import MAX_JOB_NODES, MAX_SPEC_BYTES, FieldError
from .auth import HubUnavailable, Identity, IdentityResolver
from .definitions import Definitions
from .errors import ApiError
from .listing import parse_list_query
from .metrics import observe_submit
from .page import page_routes
from .service import Gateway

__all__ = ["routes"]

log = logging.getLogger("gpulab.jobs.gateway")

JSON_TYPES = ("application/json", "text/json")
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


class BaseHandler(HubOAuthenticated, web.RequestHandler):
    ident: Identity
    # What a hub service's (admin) token may do here: nothing but cancel (JobHandler).
    service_methods: tuple[str, ...] = ()

    @property
    def gateway(self) -> Gateway:
        return self.settings["gateway"]

    @property
    def resolver(self) -> IdentityResolver:
        return self.settings["resolver"]

    @property
    def hub_auth(self):  # type: ignore[override]
        return self.settings["hub_auth"]

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def check_xsrf_cookie(self) -> None:
        # token-authenticated requests are not subject to XSRF; cookie ones are (HubOAuth)
        if getattr(self, "_token_authenticated", False):
            return
        super().check_xsrf_cookie()

    async def prepare(self) -> None:
        try:
            caller = await self.resolver.caller(self)
            if caller is None:
                raise ApiError(
                    401,
                    "authentication required: send a hub API token "
                    "(Authorization: token <token>) or log in to the hub",
                )
            ident = await self.resolver.identity(caller)
        except HubUnavailable:
            raise ApiError(503, "the hub did not answer; retry shortly", retry_after=5) from None
        if ident is None:
            raise ApiError(401, "the hub does not know this user")
        if ident.service and self.request.method not in self.service_methods:
            raise ApiError(403, "a service's token may only cancel jobs (DELETE /jobs/<id>)")
        self.ident = ident
        if not self.gateway.ready:  # never answer from a half-loaded cache
            raise ApiError(
                503, "the gateway is starting (loading jobs); retry shortly", retry_after=2
            )
        if self.request.method in ("POST", "PUT", "PATCH", "DELETE") and not getattr(
            self, "_token_authenticated", False
        ):
            self.check_xsrf_cookie()

    def write_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(value))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            body = exc.body()
            if exc.retry_after:
                self.set_header("Retry-After", str(exc.retry_after))
        elif isinstance(exc, web.HTTPError) and status_code < 500:
            body = {"error": exc.log_message or self._reason}
        else:
            body = {"error": "internal error in the jobs gateway (logged)"}
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(body))

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            status_code = exc.status
        super().send_error(status_code, **kwargs)

    def log_exception(self, typ, value, tb) -> None:  # type: ignore[override]
        if isinstance(value, ApiError):
            if value.status >= 500:
                log.warning("%s %s: %s", self.request.method, self.request.path, value.error)
            return
        super().log_exception(typ, value, tb)

    def document(self) -> tuple[bytes, str]:
        """The request's body (a spec or a definition, JSON or YAML) and its content type;
        413 when too large, 415 for another type."""
        body = self.request.body
        if len(body) > MAX_SPEC_BYTES:
            raise ApiError(413, f"the body is {len(body)} bytes; at most {MAX_SPEC_BYTES}")
        ctype = (self.request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype and ctype not in JSON_TYPES + YAML_TYPES + ("text/plain",):
            raise ApiError(
                415,
                f"unsupported Content-Type {ctype[:60]!r}",
                [FieldError("Content-Type", ctype[:60], "application/json or application/yaml")],
            )
        return body, ctype

    def int_arg(self, name: str, default: int | None, low: int, high: int) -> int | None:
        raw = self.get_argument(name, None)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise ApiError(
                400, f"bad {name}", [FieldError(name, f"{raw[:20]!r}", f"an integer {low}-{high}")]
            )
        return value


class MeHandler(BaseHandler):
    async def get(self) -> None:
        self.write_json(self.gateway.me(self.ident))


class JobsHandler(BaseHandler):
    async def get(self) -> None:
        args = {name: self.get_argument(name) for name in self.request.query_arguments}
        self.write_json(self.gateway.list(self.ident, parse_list_query(args)))

    async def post(self) -> None:
        body, ctype = self.document()
        status, job = await self.gateway.submit(
            self.ident, body, ctype or None, self.request.headers.get("Idempotency-Key")
        )
        if status == 201:
            self.set_header("Location", f"{self.settings['prefix']}api/v1/jobs/{job['id']}")
        self.write_json(job, status)

    def on_finish(self) -> None:
        # Every submit's answer, refusals in prepare() (401, 503) included.
        if self.request.method == "POST":
            observe_submit(self.get_status(), self.request.request_time())


class ValidateHandler(BaseHandler):
    """``POST /jobs/validate``: the submit's checks without the submit (``gpulab jobs
    validate``); 200 with ``{valid, problems}`` either way."""

    async def post(self) -> None:
        body, ctype = self.document()
        self.write_json(await self.gateway.validate(self.ident, body, ctype or None))


class JobHandler(BaseHandler):
    service_methods = ("DELETE",)

    async def get(self, job_id: str) -> None:
        self.write_json(await self.gateway.get(self.ident, job_id))

    async def delete(self, job_id: str) -> None:
        self.write_json(
            await self.gateway.cancel(self.acting(), job_id, reason=self.cancel_reason()), 202
        )

    def cancel_reason(self) -> str | None:
        """Why the job is cancelled (optional; the dashboard always gives one), for its owner."""
        value = self.get_argument("reason", None)
        if value is None:
            return None
        reason, problems = check_reason(value)
        if reason is None:
            raise ApiError(400, f"reason {problems[0].message}", problems)
        return reason

    def acting(self) -> Identity:
        """Who cancels: the caller, or for a service (the culler's dashboard) the admin it
        names in ``on_behalf_of`` -- recorded as the job's canceller. Only a service holding
        the admin scope may name someone (it has checked that person is an admin)."""
        name = self.get_argument("on_behalf_of", None)
        field = "on_behalf_of"
        if name is None:
            if self.ident.service:
                raise ApiError(
                    400,
                    "a service cancels for someone",
                    [FieldError(field, "is missing", "the admin acting, a hub username")],
                )
            return self.ident
        if not self.ident.service:
            raise ApiError(
                403,
                "only gpulab's services may cancel on someone's behalf",
                [FieldError(field, "is not for people's tokens", "nothing")],
            )
        if not (0 < len(name) <= 255 and name.isprintable() and "/" not in name):
            raise ApiError(
                400,
                "bad on_behalf_of",
                [FieldError(field, "is not a username", "a hub username (1-255 characters)")],
            )
        return Identity(name=name, groups=(), admin=True)


class ResubmitHandler(BaseHandler):
    async def post(self, job_id: str) -> None:
        status, job = await self.gateway.resubmit(self.ident, job_id)
        self.write_json(job, status)


class LogsHandler(BaseHandler):
    _closed = False

    def on_connection_close(self) -> None:
        self._closed = True

    async def get(self, job_id: str) -> None:
        follow = self.get_argument("follow", "0").lower() in ("1", "true", "yes")
        tail = self.int_arg("tail", None, 0, 1_000_000)
        rank = self.int_arg("rank", 0, 0, MAX_JOB_NODES - 1) or 0
        run = self.int_arg("run", None, 0, 1_000_000)
        chunks = self.gateway.logs(
            self.ident,
            job_id,
            follow=follow,
            tail=tail,
            rank=rank,
            closed=lambda: self._closed,
            run=run,
        )
        started = False
        try:
            async for chunk in chunks:
                if not started:
                    self.set_header("Content-Type", "text/plain; charset=utf-8")
                    started = True
                self.write(chunk)
                if follow:
                    await self.flush()
        except StreamClosedError:
            return
        except ApiError:
            if started:  # the status line is gone already: end the stream
                self.finish()
                return
            raise
        finally:
            await chunks.aclose()
        if not started:
            self.set_header("Content-Type", "text/plain; charset=utf-8")
        if not self._closed:
            self.finish()


class OutputsHandler(BaseHandler):
    async def get(self, job_id: str) -> None:
        run = self.int_arg("run", None, 0, 1_000_000)
        self.write_json(await self.gateway.outputs(self.ident, job_id, run))


class OutputHandler(BaseHandler):
    async def get(self, job_id: str, path: str) -> None:
        url, expires = await self.gateway.output_url(self.ident, job_id, path)
        if self.get_argument("redirect", "1") in ("0", "false", "no"):
            self.write_json({"url": url, "expires_in": expires})
            return
        self.redirect(url, status=307)


class DefinitionsHandler(BaseHandler):
    """``GET`` the caller's saved definitions; ``POST`` saves one (docs/jobs.md)."""

    @property
    def definitions(self) -> Definitions:
        return self.settings["definitions"]

    async def get(self) -> None:
        self.write_json(await self.definitions.list(self.ident))

    async def post(self) -> None:
        body, ctype = self.document()
        self.write_json(await self.definitions.create(self.ident, body, ctype or None), 201)


class DefinitionHandler(BaseHandler):
    @property
    def definitions(self) -> Definitions:
        return self.settings["definitions"]

    async def get(self, name: str) -> None:
        self.write_json(await self.definitions.get(self.ident, name))

    async def delete(self, name: str) -> None:
        self.write_json(await self.definitions.delete(self.ident, name))


class DefinitionActionHandler(DefinitionHandler):
    async def post(self, name: str, action: str) -> None:
        if action == "pause":
            self.write_json(await self.definitions.set_paused(self.ident, name, True))
        elif action == "resume":
            self.write_json(await self.definitions.set_paused(self.ident, name, False))
        else:  # run-now (the route admits nothing else)
            self.write_json(await self.definitions.run_now(self.ident, name), 201)


class OpenAPIHandler(web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(self.settings["openapi"]))


class NotFoundHandler(BaseHandler):
    async def prepare(self) -> None:
        raise ApiError(404, f"no such endpoint: {self.request.path[:200]}")


def routes(prefix: str) -> list[tuple[str, type, dict[str, Any]] | tuple[str, type]]:
    api = prefix + "api/v1"
    job = r"/jobs/(?P<job_id>[^/]+)"
    return [
        (prefix + "oauth_callback", HubOAuthCallbackHandler),
        (prefix + "openapi.json", OpenAPIHandler),
        (api + "/openapi.json", OpenAPIHandler),
        (api + "/me", MeHandler),
        (api + "/jobs", JobsHandler),
        (api + "/jobs/validate", ValidateHandler),
        (api + job, JobHandler),
        (api + "/definitions", DefinitionsHandler),
        (api + r"/definitions/(?P<name>[^/]+)", DefinitionHandler),
        (
            api + r"/definitions/(?P<name>[^/]+)/(?P<action>pause|resume|run-now)",
            DefinitionActionHandler,
        ),
        (api + job + "/resubmit", ResubmitHandler),
        (api + job + "/logs", LogsHandler),
        (api + job + "/outputs", OutputsHandler),
        (api + job + "/outputs/(?P<path>.+)", OutputHandler),
        *page_routes(prefix),
        (prefix + ".*", NotFoundHandler),
    ]
