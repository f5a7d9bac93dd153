"""The Kubernetes REST API over aiohttp, backed by the :class:`~gpulab.kubesim.store.Store`.

Request flow: audit middleware (records the outcome) -> auth middleware (with a token file:
authenticate the bearer token, apply impersonation, authorize with RBAC; without one: every
request is an unrestricted admin) -> fault middleware (optional injected
latency/errors) -> error middleware (every failure becomes a ``v1 Status`` body; nothing
escapes as a bare 500) -> the handler for discovery, admin, or a resource request. Resource
requests run admission (schema, semantic checks, quota) before the store commits, so a
rejected request never changes state.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import re
from collections.abc import Awaitable, Callable
from typing import Any

import yaml
from aiohttp import web
from gpulab.kubesim import admission, defaults, discovery, patch, reviews, tables
from gpulab.kubesim.audit import Audit, AuditRecord
from gpulab.kubesim.authn import (
    UNRESTRICTED,
    TokenAuthenticator,
    UserInfo,
    impersonation,
    unauthorized,
)
from gpulab.kubesim.errors import (
    ApiError,
    bad_request,
    method_not_allowed,
    not_found,
    too_large,
    unsupported_media_type,
)
from gpulab.kubesim.faults import Faults, parse_faults
from gpulab.kubesim.kueue import crds, visibility, webhook
from gpulab.kubesim.kueue.controller import KueueController
from gpulab.kubesim.logs import LogDir, serve_log
from gpulab.kubesim.rbac import GROUP as RBAC_GROUP
from gpulab.kubesim.rbac import (
    Attributes,
    Decision,
    Rule,
    StoreAuthorizer,
    escalation_forbidden,
    forbidden,
    impersonation_checks,
)
from gpulab.kubesim.requestinfo import RequestInfo, parse_request
from gpulab.kubesim.store import RESOURCES, ResourceType, Store, WatchEvent, resource

log = logging.getLogger("gpulab.kubesim.server")

MAX_BODY = 3 * 1024 * 1024  # the apiserver's limit for a JSON request body
DEFAULT_WATCH_TIMEOUT = 1800.0  # the apiserver's min-request-timeout
_INFO = web.RequestKey("kubesim_request_info", RequestInfo)
_AUDITED = web.RequestKey("kubesim_audited", bool)
_USER = web.RequestKey("kubesim_user", UserInfo)
# Served to anyone, token or not: the health and version probes (upstream's
# system:public-info-viewer also lets anonymous callers read these). kubesim's own admin
# endpoints (/kubesim/...: fault injection, request counts) are non-resource URLs that only
# system:masters holds when a token file is in use: a pod must not inject faults.
_OPEN_PREFIXES = ("/healthz", "/readyz", "/livez", "/version")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def status_response(err: ApiError) -> web.Response:
    headers = {}
    if err.details and "retryAfterSeconds" in err.details:
        headers["Retry-After"] = str(err.details["retryAfterSeconds"])
    return web.Response(
        status=err.code, text=_dumps(err.status()), content_type="application/json", headers=headers
    )


def object_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=_dumps(obj), content_type="application/json")


def _not_found_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


class ApiServer:
    def __init__(
        self,
        store: Store,
        *,
        log_dir: LogDir,
        audit: Audit | None = None,
        faults: Faults | None = None,
        seed: int | None = None,
        authenticator: TokenAuthenticator | None = None,
        hidden_groups: frozenset[str] = frozenset(),
        kueue: KueueController | None = None,
    ) -> None:
        self.store = store
        # Optional API groups switched off (Kueue's without --kueue): not served, not listed.
        self.hidden = hidden_groups
        self.kueue = kueue
        self.authenticator = authenticator
        self.authorizer = StoreAuthorizer(store) if authenticator is not None else None
        self.log_dir = log_dir
        self.audit = audit or Audit()
        self.faults = faults or Faults()
        self._rng = random.Random(seed)
        # Open watches with the request path and the deadline that ends them, so that a cut
        # set while they stream reaches them too.
        self._watch_responses: dict[web.StreamResponse, tuple[str, asyncio.Timeout]] = {}
        self._lines: dict[tuple[int, str], tuple[dict[str, Any], bytes]] = {}

    # -- application -------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application(
            client_max_size=MAX_BODY + 1024,
            middlewares=[self._audit_mw, self._auth_mw, self._fault_mw, self._error_mw],
        )
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    @web.middleware
    async def _audit_mw(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        info = parse_request(request.method, request.path, request.query)
        request[_INFO] = info
        code = 500
        try:
            response = await handler(request)
            code = response.status
            return response
        except web.HTTPException as e:
            code = e.status
            raise
        finally:
            if info.is_resource and not request.get(_AUDITED):
                self._record(request, code)

    def _record(self, request: web.Request, code: int) -> None:
        info = request[_INFO]
        request[_AUDITED] = True
        self.audit.record(
            AuditRecord(
                verb=info.verb,
                apiGroup=info.group,
                resource=info.resource,
                subresource=info.subresource,
                namespace=info.namespace,
                name=info.name,
                userAgent=request.headers.get("User-Agent", ""),
                code=code,
                path=request.path_qs,
            )
        )

    @web.middleware
    async def _auth_mw(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.authenticator is None or request.path.startswith(_OPEN_PREFIXES):
            request[_USER] = UNRESTRICTED
            return await handler(request)
        user = self.authenticator.authenticate(request.headers.get("Authorization"))
        if user is None:
            return status_response(unauthorized())
        try:
            user = self._impersonate(request, user)
            self._require(self._attributes(request, user))
        except ApiError as e:
            return status_response(e)
        request[_USER] = user
        return await handler(request)

    def _impersonate(self, request: web.Request, caller: UserInfo) -> UserInfo:
        try:
            asked = impersonation(request.headers, request.headers.getall("Impersonate-Group", []))
        except ValueError as e:
            raise bad_request(str(e)) from None
        if asked is None:
            return caller
        for check in impersonation_checks(caller, asked):
            self._require(check)
        return asked.as_user()

    @staticmethod
    def _attributes(request: web.Request, user: UserInfo) -> Attributes:
        info = request[_INFO]
        if not info.is_resource:
            return Attributes(user, info.verb, False, path=request.path)
        return Attributes(
            user,
            info.verb,
            api_group=info.group,
            resource=info.resource,
            subresource=info.subresource,
            namespace=info.namespace,
            name=info.name,
        )

    def _decide(self, attrs: Attributes) -> Decision:
        if self.authorizer is None:
            return Decision(True)
        return self.authorizer.authorize(attrs)

    def _require(self, attrs: Attributes) -> None:
        if not self._decide(attrs).allowed:
            raise forbidden(attrs)

    def _no_escalation(
        self, request: web.Request, rt: ResourceType, ns: str | None, obj: dict[str, Any]
    ) -> None:
        """RBAC's own admission: a Role or binding may grant only what its writer holds."""
        if self.authorizer is None or rt.group != RBAC_GROUP:
            return
        user = request[_USER]
        missing = self.authorizer.index.escalation(user, rt.kind, ns or "", obj)
        name = obj["metadata"].get("name", "")
        if missing is None:
            ref = obj.get("roleRef") or {}
            ref_kind = str(ref.get("kind", "")).lower()
            raise not_found(f"{ref_kind}s", ref.get("name", ""), RBAC_GROUP)
        if missing:
            raise escalation_forbidden(rt.plural, name, user, missing)

    def _rules_for(self, user: UserInfo, namespace: str) -> list[Rule]:
        if self.authorizer is None:
            return [Rule(frozenset("*"), frozenset("*"), frozenset("*"))]
        return self.authorizer.index.rules_for(user, namespace)

    @web.middleware
    async def _fault_mw(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        faults = self.faults
        if request.path.startswith("/kubesim/") or not faults.applies(request.path):
            return await handler(request)
        if faults.latency_ms > 0:
            await asyncio.sleep(faults.latency_ms / 1000)
        if (err := faults.pick_error(self._rng)) is not None:
            return status_response(err)
        return await handler(request)

    @web.middleware
    async def _error_mw(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as e:
            return status_response(e)
        except web.HTTPRequestEntityTooLarge:
            return status_response(too_large(f"Request entity too large: limit is {MAX_BODY}"))
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except web.HTTPException:
            raise
        except Exception as e:  # a bug of ours must still answer a Status, and say so
            log.exception("internal error on %s %s", request.method, request.path)
            return status_response(
                ApiError(500, "InternalError", f"Internal error occurred: {e!r}")
            )

    # -- routing -----------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        info = request[_INFO]
        if info.is_resource:
            return await self._resource(request, info)
        path = request.path.rstrip("/") or "/"
        if path.startswith("/kubesim"):
            return await self._admin(request, path)
        if request.method != "GET":
            raise method_not_allowed()
        if path in ("/healthz", "/readyz", "/livez") or path.startswith(
            ("/healthz/", "/readyz/", "/livez/")
        ):
            return web.Response(text="ok")
        if path == "/version":
            return object_response(discovery.VERSION)
        if path == "/api":
            return object_response(discovery.api_versions())
        if path == "/apis":
            return object_response(discovery.api_group_list(self.hidden))
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) == 2 or parts[0] == "apis" and len(parts) == 3:
            doc = discovery.resource_list("/".join(parts), self.hidden)
            if doc is not None:
                return object_response(doc)
        if (
            parts[0] == "apis"
            and len(parts) == 2
            and (group := discovery.api_group(parts[1], self.hidden))
        ):
            return object_response(group)
        if path == "/openapi/v3":
            return object_response(discovery.openapi_v3_root(self.hidden))
        if path.startswith("/openapi/v3/"):
            doc = discovery.openapi_v3_doc(path.removeprefix("/openapi/v3/"), self.hidden)
            if doc is not None:
                return object_response(doc)
        if path == "/openapi/v2" and "protobuf" not in request.headers.get("Accept", ""):
            return object_response(discovery.openapi_v2())
        raise _not_found_path()

    async def _admin(self, request: web.Request, path: str) -> web.Response:
        if path == "/kubesim/faults":
            if request.method == "GET":
                return object_response(self.faults.to_dict())
            if request.method == "DELETE":
                self.faults = Faults()
                return object_response(self.faults.to_dict())
            if request.method in ("POST", "PUT"):
                try:
                    self.faults = parse_faults(await request.json())
                except (ValueError, TypeError, re.error) as e:
                    raise bad_request(str(e)) from None
                self._cut_open_watches()
                return object_response(self.faults.to_dict())
            raise method_not_allowed()
        if path == "/kubesim/requests":
            if request.method == "DELETE":
                self.audit.reset()
            return object_response(self.audit.snapshot())
        raise _not_found_path()

    def _type(self, info: RequestInfo) -> ResourceType:
        rt = RESOURCES.get((info.group, info.resource))
        if rt is None or rt.version != info.version or rt.group in self.hidden:
            raise _not_found_path()
        if info.subresource and info.subresource not in rt.subresources:
            raise _not_found_path()
        if info.namespace and rt.namespaced is False and rt.kind != "Namespace":
            raise _not_found_path()
        return rt

    async def _resource(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        if (review := reviews.REVIEWS.get((info.group, info.resource))) is not None:
            return await self._review(request, info, review)
        if info.group == crds.VISIBILITY_GROUP and self.kueue is not None:
            return self._pending_workloads(request, info)
        rt = self._type(info)
        ns = info.namespace if rt.namespaced else None
        verb = info.verb
        if info.subresource == "log":
            if verb != "get":
                raise method_not_allowed()
            return await serve_log(request, self.store, info.namespace, info.name, self.log_dir)
        if rt.namespaced and not ns and verb not in ("list", "watch"):
            raise _not_found_path()
        if verb == "list":
            return self._list(request, rt, ns)
        if verb == "watch":
            return await self._watch(request, rt, ns, info.name)
        if verb == "get":
            obj = self.store.get(rt, ns, info.name)
            if obj is None:
                raise not_found(rt.plural, info.name, rt.group)
            return self._render(request, rt, obj)
        if verb == "create":
            if info.name and not info.subresource:
                raise method_not_allowed()
            return await self._create(request, rt, ns)
        if verb == "update":
            return await self._update(request, rt, ns, info)
        if verb == "patch":
            return await self._patch(request, rt, ns, info)
        if verb == "delete":
            return await self._delete(request, rt, ns, info.name)
        if verb == "deletecollection":
            return await self._delete_collection(request, rt, ns)
        raise method_not_allowed()

    async def _review(
        self, request: web.Request, info: RequestInfo, rt: ResourceType
    ) -> web.Response:
        if info.version != rt.version or info.name or bool(info.namespace) != rt.namespaced:
            raise _not_found_path()
        if info.verb != "create":
            raise method_not_allowed()
        body = admission.check_kind(
            rt, await self._body(request, ("application/json", "application/yaml"))
        )
        answer = reviews.answer(
            rt, body, request[_USER], info.namespace, self._decide, self._rules_for
        )
        return object_response(answer, 201)

    def _pending_workloads(self, request: web.Request, info: RequestInfo) -> web.Response:
        assert self.kueue is not None
        if info.version != visibility.VERSION or info.subresource != visibility.SUBRESOURCE:
            raise _not_found_path()
        if info.verb != "get":
            raise method_not_allowed()
        if info.resource == "localqueues" and info.namespace:
            doc = visibility.pending_workloads(
                self.kueue, namespace=info.namespace, local_queue=info.name, query=request.query
            )
        elif info.resource == "clusterqueues" and not info.namespace:
            doc = visibility.pending_workloads(
                self.kueue, cluster_queue=info.name, query=request.query
            )
        else:
            raise _not_found_path()
        return object_response(doc)

    # -- bodies ------------------------------------------------------------------------
    async def _body(self, request: web.Request, allowed: tuple[str, ...]) -> Any:
        length = request.content_length
        if length is not None and length > MAX_BODY:
            raise too_large(f"Request entity too large: limit is {MAX_BODY}")
        # Like the apiserver, a request without Content-Type is read as the first
        # accepted type (JSON for create/update); the official Python client relies on it.
        ctype = request.content_type if "Content-Type" in request.headers else allowed[0]
        if ctype not in allowed:
            raise unsupported_media_type(ctype)
        raw = await request.read()
        if len(raw) > MAX_BODY:
            raise too_large(f"Request entity too large: limit is {MAX_BODY}")
        if not raw:
            raise bad_request("the request body is empty")
        try:
            if ctype == "application/yaml":
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as e:
            raise bad_request(f"error decoding request body: {e}") from None

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        if request.can_read_body and request.content_length != 0:
            body = await self._body(request, ("application/json", "application/yaml"))
            if not isinstance(body, dict):
                raise bad_request("DeleteOptions must be an object")
            opts.update(body)
        q = request.query
        if "gracePeriodSeconds" in q:
            try:
                opts["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
            except ValueError:
                raise bad_request("gracePeriodSeconds must be an integer") from None
        if "propagationPolicy" in q:
            opts["propagationPolicy"] = q["propagationPolicy"]
        if q.get("orphanDependents") in ("true", "false"):
            opts["orphanDependents"] = q["orphanDependents"] == "true"
        if "dryRun" in q:
            opts["dryRun"] = q.getall("dryRun")
        policy = opts.get("propagationPolicy")
        if policy is None and "orphanDependents" in opts:
            policy = "Orphan" if opts["orphanDependents"] else "Background"
        opts["propagationPolicy"] = policy
        grace = opts.get("gracePeriodSeconds")
        if grace is not None and not isinstance(grace, int):
            raise bad_request("gracePeriodSeconds must be an integer")
        return opts

    @staticmethod
    def _dry_run(request: web.Request) -> bool:
        values = request.query.getall("dryRun", [])
        for v in values:
            if v != "All":
                raise bad_request(f'dryRun: Unsupported value: "{v}": supported values: "All"')
        return bool(values)

    @staticmethod
    def _strict(request: web.Request) -> bool:
        value = request.query.get("fieldValidation", "Strict")
        if value not in ("Strict", "Warn", "Ignore"):
            raise bad_request(f'fieldValidation: Unsupported value: "{value}"')
        return value == "Strict"

    # -- reads -------------------------------------------------------------------------
    def _render(self, request: web.Request, rt: ResourceType, obj: dict[str, Any]) -> web.Response:
        if tables.wants_table(request.headers.get("Accept", "")):
            return object_response(
                tables.to_table(
                    rt.kind, [obj], include_object=request.query.get("includeObject", "Metadata")
                )
            )
        return object_response(obj)

    def _list(self, request: web.Request, rt: ResourceType, ns: str | None) -> web.Response:
        q = request.query
        self.store.check_list_resource_version(
            q.get("resourceVersion"), q.get("resourceVersionMatch")
        )
        items, rv = self.store.list(
            rt,
            ns,
            label_selector=q.get("labelSelector"),
            field_selector=q.get("fieldSelector"),
            copy_objects=False,
        )
        metadata: dict[str, Any] = {"resourceVersion": rv}
        if cont := q.get("continue"):
            try:
                after = json.loads(base64.urlsafe_b64decode(cont))["after"]
            except (ValueError, KeyError, TypeError):
                raise bad_request("continue key is not valid") from None
            items = [
                o
                for o in items
                if [o["metadata"].get("namespace", ""), o["metadata"]["name"]] > after
            ]
        try:
            limit = int(q.get("limit") or 0)
        except ValueError:
            raise bad_request(f"limit: Invalid value: {q['limit']!r}: must be an integer") from None
        if limit > 0 and len(items) > limit:
            remaining = len(items) - limit
            items = items[:limit]
            last = items[-1]["metadata"]
            token = {"after": [last.get("namespace", ""), last["name"]], "rv": rv}
            metadata["continue"] = base64.urlsafe_b64encode(_dumps(token).encode()).decode()
            metadata["remainingItemCount"] = remaining
        if tables.wants_table(request.headers.get("Accept", "")):
            table = tables.to_table(
                rt.kind,
                items,
                resource_version=rv,
                include_object=q.get("includeObject", "Metadata"),
            )
            table["metadata"].update({k: v for k, v in metadata.items() if k != "resourceVersion"})
            return object_response(table)
        return object_response(
            {
                "kind": f"{rt.kind}List",
                "apiVersion": rt.api_version,
                "metadata": metadata,
                "items": items,
            }
        )

    def _cut_open_watches(self) -> None:
        """Apply ``cut_watches_after_s`` to the matching watches already streaming, as a
        network cut would; long-lived watches would otherwise never see the fault."""
        faults = self.faults
        if faults.cut_watches_after_s is None:
            return
        when = asyncio.get_running_loop().time() + faults.cut_watches_after_s
        for path, deadline in self._watch_responses.values():
            current = deadline.when()
            if faults.applies(path) and (current is None or current > when):
                deadline.reschedule(when)

    async def _watch(
        self, request: web.Request, rt: ResourceType, ns: str | None, name: str
    ) -> web.StreamResponse:
        q = request.query
        field_selector = q.get("fieldSelector") or ""
        if name:  # the legacy single-object watch path
            field_selector = ",".join(filter(None, [field_selector, f"metadata.name={name}"]))
        timeout = DEFAULT_WATCH_TIMEOUT
        if q.get("timeoutSeconds"):
            try:
                timeout = float(q["timeoutSeconds"])
            except ValueError:
                raise bad_request("timeoutSeconds must be a number") from None
        faults = self.faults
        faulted = faults.applies(request.path)
        if faulted and faults.cut_watches_after_s is not None:
            timeout = min(timeout, faults.cut_watches_after_s)
        watch = self.store.watch(
            rt,
            ns,
            resource_version=q.get("resourceVersion"),
            label_selector=q.get("labelSelector"),
            field_selector=field_selector or None,
            bookmarks=q.get("allowWatchBookmarks", "").lower() in ("true", "1"),
            copy_objects=False,
        )
        if faulted and faults.gone_next_watch:
            faults.gone_next_watch = False
            watch.close()
            watch = self.store.expired_watch(rt, "too old resource version (injected by kubesim)")
        as_table = tables.wants_table(request.headers.get("Accept", ""))
        include = q.get("includeObject", "Metadata")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        # A watch is counted when it starts streaming, so open watches show up in the audit.
        self._record(request, response.status)
        first = True
        try:
            async with asyncio.timeout(timeout) as deadline:
                self._watch_responses[response] = (request.path, deadline)
                async for event in watch:
                    if as_table and event.type in ("ADDED", "MODIFIED", "DELETED"):
                        obj = tables.to_table(
                            rt.kind, [event.object], include_object=include, headers=first
                        )
                        first = False
                        line = (_dumps({"type": event.type, "object": obj}) + "\n").encode()
                    else:
                        line = self._event_line(event)
                    await response.write(line)
        except (TimeoutError, ConnectionResetError):
            pass
        finally:
            watch.close()
            self._watch_responses.pop(response, None)
        try:
            await response.write_eof()
        except ConnectionResetError:
            pass
        return response

    def _event_line(self, event: WatchEvent) -> bytes:
        """The JSON line of an event, serialised once for all watchers that share it.

        Watchers receive the store's committed snapshot itself (never mutated), so the
        object's identity is a safe cache key while we hold a reference to it.
        """
        key = (id(event.object), event.type)
        hit = self._lines.get(key)
        if hit is not None and hit[0] is event.object:
            return hit[1]
        line = (_dumps({"type": event.type, "object": event.object}) + "\n").encode()
        if len(self._lines) >= 4096:
            self._lines.clear()
        self._lines[key] = (event.object, line)
        return line

    # -- writes ------------------------------------------------------------------------
    def _namespace_of(self, rt: ResourceType, ns: str | None, obj: dict[str, Any]) -> None:
        md = obj.get("metadata")
        if md is None:
            md = obj["metadata"] = {}
        if not isinstance(md, dict):
            raise bad_request("metadata must be an object")
        if rt.namespaced:
            if md.get("namespace") and md["namespace"] != ns:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            md["namespace"] = ns

    async def _create(self, request: web.Request, rt: ResourceType, ns: str | None) -> web.Response:
        body = await self._body(request, ("application/json", "application/yaml"))
        obj = admission.check_kind(rt, body)
        self._namespace_of(rt, ns, obj)
        if crds.GROUP not in self.hidden:
            webhook.default_on_create(rt, ns, obj)
        dry_run = self._dry_run(request)
        admission.validate(rt, obj, strict=self._strict(request))
        admission.admit_create(self.store, rt, ns, obj)
        self._no_escalation(request, rt, ns, obj)
        if dry_run:
            if rt.namespaced and ns and self.store.get(resource("namespaces"), None, ns) is None:
                raise not_found("namespaces", ns)
            name = obj["metadata"].get("name")
            if name and self.store.get(rt, ns, name) is not None:
                from gpulab.kubesim.errors import already_exists  # noqa: PLC0415

                raise already_exists(rt.plural, name, rt.group)
            obj["metadata"].setdefault("name", obj["metadata"].get("generateName", "") + "dryrun")
            obj["metadata"]["uid"] = "00000000-0000-0000-0000-000000000000"
            defaults.on_create(rt, obj)
            return object_response(obj, 201)
        # The body was parsed for this request alone: the store may keep it as it is.
        return object_response(self.store.create(rt, ns, obj, copy_objects=False), 201)

    async def _update(
        self, request: web.Request, rt: ResourceType, ns: str | None, info: RequestInfo
    ) -> web.Response:
        body = await self._body(request, ("application/json", "application/yaml"))
        obj = admission.check_kind(rt, body)
        self._namespace_of(rt, ns, obj)
        name_in_body = obj["metadata"].get("name")
        if name_in_body and name_in_body != info.name:
            raise bad_request(
                f"the name of the object ({name_in_body}) does not match the name on the URL ({info.name})"
            )
        obj["metadata"]["name"] = info.name
        current = self.store.get(rt, ns, info.name)
        if current is None:
            raise not_found(rt.plural, info.name, rt.group)
        return self._commit_update(request, rt, ns, info, current, obj)

    async def _patch(
        self, request: web.Request, rt: ResourceType, ns: str | None, info: RequestInfo
    ) -> web.Response:
        body = await self._body(
            request,
            (patch.JSON_PATCH, patch.MERGE_PATCH, patch.STRATEGIC_MERGE_PATCH, patch.APPLY_PATCH),
        )
        current = self.store.get(rt, ns, info.name)
        if current is None:
            raise not_found(rt.plural, info.name, rt.group)
        result = patch.apply_patch(request.content_type, current, body, rt.kind, rt.api_version)
        result = admission.check_kind(rt, result)
        md = result.get("metadata") or {}
        if md.get("name") != info.name or (rt.namespaced and md.get("namespace") != ns):
            raise bad_request("metadata.name and metadata.namespace cannot be changed by a patch")
        return self._commit_update(request, rt, ns, info, current, result)

    def _commit_update(
        self,
        request: web.Request,
        rt: ResourceType,
        ns: str | None,
        info: RequestInfo,
        current: dict[str, Any],
        obj: dict[str, Any],
    ) -> web.Response:
        dry_run = self._dry_run(request)
        if info.subresource == "status":
            candidate = {**current, "status": obj.get("status")}
            if candidate["status"] is None:
                candidate.pop("status")
        else:
            candidate = dict(obj)
            # Defaulting runs on updates too; without it a PUT of a hand-written pod would
            # look like a change of the (immutable) defaulted fields.
            if rt.kind == "Pod" and isinstance(obj.get("spec"), dict):
                defaults.pod_spec_defaults(obj["spec"])
            if "status" in rt.subresources:  # the main resource cannot change status
                candidate["status"] = current.get("status")
                if candidate["status"] is None:
                    candidate.pop("status")
            # Server-owned metadata is kept as stored, as the apiserver does.
            candidate["metadata"] = {
                **obj.get("metadata", {}),
                **{
                    k: current["metadata"][k]
                    for k in ("uid", "creationTimestamp")
                    if k in current["metadata"]
                },
            }
        admission.validate(rt, candidate, old=current, strict=self._strict(request))
        self._no_escalation(request, rt, ns, candidate)
        if dry_run:
            return object_response(candidate)
        return object_response(
            self.store.replace(rt, ns, info.name, obj, subresource=info.subresource or None)
        )

    async def _delete(
        self, request: web.Request, rt: ResourceType, ns: str | None, name: str
    ) -> web.Response:
        opts = await self._delete_options(request)
        current = self.store.get(rt, ns, name)
        if current is None:
            raise not_found(rt.plural, name, rt.group)
        if opts.get("dryRun"):
            return object_response(current)
        return object_response(
            self.store.delete(
                rt,
                ns,
                name,
                grace_period_seconds=opts.get("gracePeriodSeconds"),
                propagation_policy=opts.get("propagationPolicy"),
                preconditions=opts.get("preconditions"),
            )
        )

    async def _delete_collection(
        self, request: web.Request, rt: ResourceType, ns: str | None
    ) -> web.Response:
        opts = await self._delete_options(request)
        q = request.query
        items, _ = self.store.list(
            rt, ns, label_selector=q.get("labelSelector"), field_selector=q.get("fieldSelector")
        )
        deleted = []
        for obj in items:
            if opts.get("dryRun"):
                deleted.append(obj)
                continue
            try:
                deleted.append(
                    self.store.delete(
                        rt,
                        obj["metadata"].get("namespace"),
                        obj["metadata"]["name"],
                        grace_period_seconds=opts.get("gracePeriodSeconds"),
                        propagation_policy=opts.get("propagationPolicy"),
                    )
                )
            except ApiError as e:
                if e.code != 404:
                    raise
        return object_response(
            {
                "kind": f"{rt.kind}List",
                "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": str(self.store.resource_version)},
                "items": deleted,
            }
        )


__all__ = ["ApiServer", "WatchEvent", "status_response"]
