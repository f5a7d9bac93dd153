"""HTTP handlers of the culler service (docs/admin.md, "The culler service").

Identity comes from the hub only (``HubOAuthenticated``: a token or the hub OAuth cookie);
groups from the hub's user model, read with the service's own token (cached ≤ 30 s). Admin
rights come from the request's token: it must carry gpulab's admin scope
(:func:`gpulab.hub.services.holds_admin_scope`), which a notebook server's token never does,
whoever its owner. Names and groups in bodies are never trusted:

* ``POST /activity`` accepts only a server's own token: its scopes name exactly one server,
  ``access:servers!server=<owner>/<name>``; a ``server_name`` in the body must match it.
* ``/servers/me*`` act on the caller's own servers only.
* ``/api/v1/notices/me``: the caller's own servers and jobs that admins stopped or cancelled,
  with the reason (the hub's home page reads the same rows).
* ``/dashboard/`` and ``/api/v1/{usage,overview,cycle,export,admin/...}``: admin tokens only
  (403). A stop or cancel needs a ``reason`` (400 naming the field), stored with the admin and
  the time, and answers in words ("Stopped alice's default server").
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from gpulab.hub.culler.admin_actions import AdminAction, check_reason
from gpulab.hub.culler.job_reports import reporting_job
from gpulab.hub.dashboard.export import running_csv, usage_csv
from gpulab.hub.names import is_label_value
from gpulab.hub.services import holds_admin_scope
from jupyterhub.services.auth import HubOAuthenticated
from tornado import web

from gpulab.wire.activity import ActivityReport, ReportError
from gpulab.wire.runner import REPORT_TOKEN_HEADER

from .cycle import Culler
from .job_cancel import JobCanceller

__all__ = ["routes"]

log = logging.getLogger("gpulab.culler")

MAX_BODY = 256 * 1024
DASHBOARD_PAGE = "dashboard"  # the snapshot's key of the rendered page
SERVER_SCOPE = "access:servers!server="


def parse_since(value: str, now: datetime) -> datetime:
    """``30d``, ``12h``, ``90m`` or an ISO date/time."""
    from gpulab.hub.policy.quantities import parse_duration

    try:
        return now - timedelta(seconds=parse_duration(value))
    except Exception:  # noqa: BLE001 - try a date next
        pass
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise web.HTTPError(
            400, reason=f"since={value!r}: give a duration like 30d or 12h, or an ISO date"
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class BaseHandler(HubOAuthenticated, web.RequestHandler):
    html = False

    @property
    def culler(self) -> Culler:
        return self.settings["culler"]

    def write_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "log_message", None) or getattr(exc, "reason", None)
        message = message or self._reason
        if self.html:
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(
                f"<!doctype html><title>{status_code}</title><h1>{status_code}</h1>"
                f"<p>{web.escape.xhtml_escape(str(message))}</p>"
            )
        else:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"error": str(message)}))

    async def caller(self) -> dict[str, Any]:
        """The hub's model of the caller (groups, admin), or 401."""
        ident = self.current_user
        if not ident or ident.get("kind", "user") != "user":
            raise web.HTTPError(401, "log in with a hub token or session")
        model = await self.culler.hub.user(ident["name"])
        if model is None:
            raise web.HTTPError(403, "unknown user")
        return model

    async def own_server(self, name: str) -> dict[str, Any]:
        """The caller's model, with ``name`` among their running servers, or 404."""
        model = await self.caller()
        if name not in (model.get("servers") or {}):
            model = await self.culler.hub.user(model["name"], fresh=True) or model
        if name not in (model.get("servers") or {}):
            raise web.HTTPError(404, f"you have no running server named {name!r}")
        return model

    def token_is_admin(self) -> bool:
        """Whether the request's token (or session) carries gpulab's admin scope."""
        return holds_admin_scope((self.current_user or {}).get("scopes") or ())

    async def admin(self) -> dict[str, Any]:
        model = await self.caller()
        if not self.token_is_admin():
            raise web.HTTPError(403, "admins only")
        return model

    def body_json(self) -> dict[str, Any]:
        if len(self.request.body) > MAX_BODY:
            raise web.HTTPError(413, f"body larger than {MAX_BODY} bytes")
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError as e:
            raise web.HTTPError(400, f"body is not JSON: {e}") from None
        if not isinstance(body, dict):
            raise web.HTTPError(400, "body must be a JSON object")
        return body

    def reason(self, body: dict[str, Any]) -> str:
        """The admin's reason for a stop or cancel, or a 400 naming the field."""
        reason, problems = check_reason(body.get("reason"))
        if reason is None:
            self.write_json(
                {
                    "error": f"reason {problems[0].message}",
                    "errors": [p.as_dict() for p in problems],
                },
                400,
            )
            raise web.Finish()
        return reason

    def server_arg(self) -> str:
        name = self.get_argument("server", "")
        if len(name) > 255:
            raise web.HTTPError(400, "server name too long")
        return name


# ---------------------------------------------------------------------------- servers


class ActivityHandler(BaseHandler):
    """A server's report. Its body is the user's to forge: one that is not an acceptable
    report (a wrong type, a non-finite number, a date far ahead of our clock) is a 400 that
    names the field, and what is stored is dated no later than its arrival."""

    async def post(self) -> None:
        ident = self.current_user
        if not ident:
            raise web.HTTPError(401, "a server's $JUPYTERHUB_API_TOKEN is required")
        owner = ident["name"]
        servers = [
            s[len(SERVER_SCOPE) :] for s in ident.get("scopes", []) if s.startswith(SERVER_SCOPE)
        ]
        if len(servers) != 1 or "/" not in servers[0]:
            raise web.HTTPError(403, "only a notebook server's own token may report activity")
        token_user, _, token_server = servers[0].partition("/")
        if token_user != owner:
            raise web.HTTPError(403, "this token belongs to another user's server")
        body = self.body_json()
        claimed = body.pop("server_name", None)
        if claimed is not None and claimed != token_server:
            raise web.HTTPError(403, f"this token is for server {token_server!r}, not {claimed!r}")
        try:
            report = ActivityReport.from_json(body).received(self.culler.now())
        except ReportError as e:
            self.write_json({"error": str(e), "field": e.field}, 400)
            return
        model = await self.culler.hub.user(owner)
        groups = list((model or {}).get("groups") or [])
        self.culler.record_report(owner, token_server, report, groups)
        self.write_json(self.culler.status(owner, token_server, groups))


class JobActivityHandler(BaseHandler):
    """A GPU job's report (its runner's GPU samples). The caller is the job's pod, which holds
    no hub token: it proves itself with the job's report token (``X-Gpulab-Job-Token``),
    checked against the hash its running pod carries (:mod:`gpulab.hub.culler.job_reports`).
    Any mismatch is the same 403, so nothing tells a prober which jobs exist."""

    async def post(self, job_id: str) -> None:
        pods = self.settings.get("pods")
        if pods is None:
            raise web.HTTPError(503, "the culler does not watch pods: job reports are off")
        token = self.request.headers.get(REPORT_TOKEN_HEADER, "")
        job = reporting_job(pods(), job_id, token)
        if job is None:
            raise web.HTTPError(403, "not a running GPU job's report token for this job")
        try:
            report = ActivityReport.from_json(self.body_json()).received(self.culler.now())
        except ReportError as e:
            self.write_json({"error": str(e), "field": e.field}, 400)
            return
        model = await self.culler.hub.user(job.owner)
        self.culler.record_job_report(
            job_id,
            owner=job.owner,
            groups=list((model or {}).get("groups") or []),
            gpus=job.gpus,
            started=job.started,
            report=report,
        )
        self.write_json({"job_id": job_id, "recorded": True})


class StatusHandler(BaseHandler):
    @web.authenticated
    async def get(self) -> None:
        name = self.server_arg()
        model = await self.own_server(name)
        self.write_json(self.culler.status(model["name"], name, list(model.get("groups") or [])))


class KeepHandler(BaseHandler):
    @web.authenticated
    async def post(self) -> None:
        name = self.server_arg()
        model = await self.own_server(name)
        groups = list(model.get("groups") or [])
        ok, message = await self.culler.keep(model["name"], name, groups)
        status = self.culler.status(model["name"], name, groups)
        status["message"] = message
        log.info("%s/%s: keep my server: %s", model["name"], name, message)
        self.write_json(status if ok else {"error": message, **status}, 200 if ok else 409)


class IdleJobsHandler(BaseHandler):
    @web.authenticated
    async def get(self) -> None:
        model = await self.caller()
        groups_of = self.settings["groups_of"]
        jobs = self.culler.idle_jobs(groups_of)
        if not self.token_is_admin():
            jobs = [j for j in jobs if j["owner"] == model["name"]]
        self.write_json({"items": jobs})


# ---------------------------------------------------------------------------- admin


class NoticesHandler(BaseHandler):
    """The caller's own servers and jobs an admin stopped or cancelled (last 7 days)."""

    @web.authenticated
    async def get(self) -> None:
        model = await self.caller()
        since = datetime.now(UTC) - timedelta(days=7)
        actions = await self.culler.store.actions_for(model["name"], since)
        self.write_json({"items": [a.to_json() for a in actions]})


class UsageHandler(BaseHandler):
    @web.authenticated
    async def get(self) -> None:
        await self.admin()
        from gpulab.hub.usage.queries import summarize

        now = datetime.now(UTC)
        since = parse_since(self.get_argument("since", "30d"), now)
        by = [b for b in self.get_argument("by", "user,group,kind").split(",") if b]
        try:
            rows = await asyncio.to_thread(summarize, self.settings["engine"], since, now, by)
        except ValueError as e:
            raise web.HTTPError(400, str(e)) from None
        self.write_json(
            {
                "since": since.isoformat(),
                "until": now.isoformat(),
                "by": by,
                "items": [r.to_json() for r in rows],
            }
        )


class OverviewHandler(BaseHandler):
    @web.authenticated
    async def get(self) -> None:
        await self.admin()
        built = await self.settings["snapshot"].get()
        body, encoding = built.json_for(self.request.headers.get("Accept-Encoding", ""))
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Vary", "Accept-Encoding")
        if encoding:
            self.set_header("Content-Encoding", encoding)
        self.finish(body)


class CycleHandler(BaseHandler):
    @web.authenticated
    async def post(self) -> None:
        await self.admin()
        result = await self.culler.run_cycle()
        self.write_json({**result.to_json(), "decisions": result.lines})


def server_words(user: str, server: str) -> str:
    """ "alice's default server" / "alice's server big"."""
    return f"{user}'s server {server}" if server else f"{user}'s default server"


class StopServerHandler(BaseHandler):
    @web.authenticated
    async def post(self) -> None:
        admin = await self.admin()
        body = self.body_json()
        user, name = str(body.get("user", "")), str(body.get("server", ""))
        reason = self.reason(body)
        target = await self.culler.hub.user(user, fresh=True)
        if target is None or name not in (target.get("servers") or {}):
            raise web.HTTPError(404, f"{server_words(user, name)} is not running")
        status = await self.culler.hub.stop_server(user, name)
        self.culler.book.forget(user, name)
        action = AdminAction(user, "server-stop", name, reason, admin["name"], datetime.now(UTC))
        stored = await self.culler.store.record_action(action)
        log.warning("%s/%s: stopped by admin %s: %s", user, name, admin["name"], reason)
        self.settings["overview_changed"]()
        self.write_json(
            {
                "user": user,
                "server": name,
                "hub_status": status,
                "reason": reason,
                "recorded": stored,
                "message": f"Stopped {server_words(user, name)}",
            },
            202,
        )


class CancelJobHandler(BaseHandler):
    """The dashboard's "cancel job": the jobs gateway cancels it, recording this admin as the
    canceller, so the job stays in its owner's history as Cancelled (:mod:`.job_cancel`)."""

    @web.authenticated
    async def post(self, job_id: str) -> None:
        admin = await self.admin()
        if not is_label_value(job_id) or not job_id:
            raise web.HTTPError(400, f"job id {job_id!r} is not a valid job id")
        reason = self.reason(self.body_json())
        canceller: JobCanceller = self.settings["job_canceller"]
        answer = await canceller.cancel(job_id, admin["name"], reason)
        if answer.status != 202:
            status = answer.status if answer.status in (400, 404, 409) else 503
            self.write_json({"error": answer.body.get("error", "not cancelled")}, status)
            return
        owner = str(answer.body.get("owner") or "")
        action = AdminAction(owner, "job-cancel", job_id, reason, admin["name"], datetime.now(UTC))
        stored = await self.culler.store.record_action(action) if owner else False
        log.warning("job %s: cancelled by admin %s: %s", job_id, admin["name"], reason)
        self.settings["overview_changed"]()
        whose = f"{owner}'s job" if owner else "job"
        self.write_json(
            {
                "job_id": job_id,
                "job": answer.body,
                "reason": reason,
                "recorded": stored,
                "message": f"Cancelled {whose} {job_id}",
            },
            202,
        )


class ExportHandler(BaseHandler):
    """The dashboard's tables as CSV: ``usage.csv`` (last 30 days per user, group, kind) and
    ``running.csv`` (running servers and jobs)."""

    @web.authenticated
    async def get(self, table: str) -> None:
        await self.admin()
        data = await self.settings["overview"]()
        body = usage_csv(data["usage"]) if table == "usage" else running_csv(data["running"])
        stamp = data["generated"][:10]
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="gpulab-{table}-{stamp}.csv"')
        self.set_header("Cache-Control", "no-store")
        self.finish(body)


class DashboardHandler(BaseHandler):
    html = True

    @web.authenticated
    async def get(self) -> None:
        await self.admin()
        from gpulab.hub.dashboard import XSRF_SLOT, render_dashboard

        built = await self.settings["snapshot"].get()
        prefix = self.settings["prefix"]
        html = built.page(  # rendered with the snapshot; here only for a bare test app
            DASHBOARD_PAGE, lambda data: render_dashboard(data, prefix=prefix, xsrf=XSRF_SLOT)
        )
        token = self.xsrf_token
        xsrf = token.decode() if isinstance(token, bytes) else str(token)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        # Rendered once per snapshot for every admin; each gets their own XSRF token.
        self.finish(html.replace(XSRF_SLOT, web.escape.xhtml_escape(xsrf), 1))


def routes(prefix: str) -> list[tuple[str, type, dict[str, Any]] | tuple[str, type]]:
    from gpulab.hub.dashboard import STATIC_PATH
    from jupyterhub.services.auth import HubOAuthCallbackHandler

    p = prefix.rstrip("/")
    return [
        (f"{p}/oauth_callback", HubOAuthCallbackHandler),
        (f"{p}/api/v1/activity", ActivityHandler),
        (f"{p}/api/v1/jobs/(?P<job_id>[^/]+)/activity", JobActivityHandler),
        (f"{p}/api/v1/servers/me", StatusHandler),
        (f"{p}/api/v1/servers/me/keep", KeepHandler),
        (f"{p}/api/v1/jobs/idle", IdleJobsHandler),
        (f"{p}/api/v1/notices/me", NoticesHandler),
        (f"{p}/api/v1/usage", UsageHandler),
        (f"{p}/api/v1/export/(usage|running)\\.csv", ExportHandler),
        (f"{p}/api/v1/overview", OverviewHandler),
        (f"{p}/api/v1/cycle", CycleHandler),
        (f"{p}/api/v1/admin/servers/stop", StopServerHandler),
        (f"{p}/api/v1/admin/jobs/([^/]+)/cancel", CancelJobHandler),
        (f"{p}/dashboard/?", DashboardHandler),
        (f"{p}/dashboard/static/(.*)", web.StaticFileHandler, {"path": str(STATIC_PATH)}),
    ]
