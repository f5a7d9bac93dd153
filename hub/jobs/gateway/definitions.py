"""Saved job definitions and schedules: CronJobs the gateway owns (hub/jobs/definitions.py).

Create / list / show / pause / resume / run-now / delete, each for the definition's owner
only (another user's definition answers 404, as a missing one does). A scheduled run is a Job
the CronJob controller makes; :meth:`Definitions.keep_credentials` gives it its upload
credential: for each run pod still behind ``UPLOAD_CREDENTIAL_GATE``, it writes a credential
for that run's own S3 prefix into the definition's upload Secret, then lifts the gate (the
pod cannot start before, so it never sees another run's credential).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from ...names import escape_username
from ...workload.labels import (
    DEFINITION_LABEL,
    DEFINITION_NAME_LABEL,
    GPUS_LABEL,
    GROUP_LABEL,
    JOB_ID_LABEL,
    JOB_NAME_LABEL,
    OWNER_ANNOTATION,
    SCHEDULED_ANNOTATION,
    SPEC_ANNOTATION,
    UPLOAD_CREDENTIAL_GATE,
    UPLOAD_RUN_ANNOTATION,
    USER_LABEL,
)
from ..definitions import Definition, parse_definition, render_cronjob
from ..ids import new_job_id
from ..manifest import render_job, render_upload_secret, upload_secret_name
from ..spec import FieldError, SpecError, parse_job_spec
from ..storage import credential_lifetime
from .auth import Identity
from .errors import ApiError, from_kube
from .kube import KubeError
from .service import Gateway

__all__ = ["Definitions"]

log = logging.getLogger("gpulab.jobs.gateway")


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


class Definitions:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.kube = gateway.kube

    # ------------------------------------------------------------------ reads
    async def _mine(self, ident: Identity) -> list[dict[str, Any]]:
        selector = f"{USER_LABEL}={escape_username(ident.name)}"
        try:
            listing = await self.kube.request(
                "GET", self.kube.cronjobs_path(), query={"labelSelector": selector}
            )
        except KubeError as exc:
            raise from_kube(exc, "listing your definitions") from None
        return [
            cj
            for cj in listing.get("items") or []
            if (_meta(cj).get("annotations") or {}).get(OWNER_ANNOTATION) == ident.name
        ]

    async def _find(self, ident: Identity, name: str) -> dict[str, Any]:
        for cj in await self._mine(ident):
            if (_meta(cj).get("labels") or {}).get(DEFINITION_NAME_LABEL) == name:
                return cj
        raise ApiError(404, f"no definition {name[:60]!r}")

    def view(self, cj: dict[str, Any]) -> dict[str, Any]:
        meta, spec, status = _meta(cj), cj.get("spec") or {}, cj.get("status") or {}
        labels = meta.get("labels") or {}
        scheduled = (meta.get("annotations") or {}).get(SCHEDULED_ANNOTATION) == "1"
        def_id = labels.get(DEFINITION_LABEL, meta.get("name", ""))
        runs = sorted(
            (
                name
                for name, job in self.gateway.cache.jobs.items()
                if (_meta(job).get("labels") or {}).get(DEFINITION_LABEL) == def_id
            ),
            reverse=True,
        )
        return {
            "name": labels.get(DEFINITION_NAME_LABEL, ""),
            "id": def_id,
            "owner": (meta.get("annotations") or {}).get(OWNER_ANNOTATION, ""),
            "schedule": spec.get("schedule") if scheduled else None,
            "timezone": spec.get("timeZone"),
            "concurrency_policy": spec.get("concurrencyPolicy"),
            "paused": bool(spec.get("suspend")) if scheduled else None,
            "last_schedule_time": status.get("lastScheduleTime"),
            "last_successful_time": status.get("lastSuccessfulTime"),
            "active_runs": [a.get("name") for a in status.get("active") or []],
            "runs": runs,
            "created": meta.get("creationTimestamp"),
            "spec": json.loads((meta.get("annotations") or {}).get(SPEC_ANNOTATION) or "{}"),
        }

    async def list(self, ident: Identity) -> dict[str, Any]:
        items = [self.view(cj) for cj in await self._mine(ident)]
        return {"items": sorted(items, key=lambda d: d["name"])}

    async def get(self, ident: Identity, name: str) -> dict[str, Any]:
        return self.view(await self._find(ident, name))

    # ------------------------------------------------------------------ writes
    async def create(self, ident: Identity, raw: bytes, content_type: str | None) -> dict[str, Any]:
        gw = self.gateway
        ent = gw.entitlement(ident)
        try:
            definition = await asyncio.to_thread(parse_definition, raw, content_type)
        except SpecError as exc:
            raise ApiError(422, "the definition is not valid", exc.problems) from None
        spec = gw.with_default_image(ident, definition.spec)
        problems = await gw.policy_problems(ident, ent, spec)
        if problems:
            raise ApiError(
                422,
                "the definition's job is not allowed by the policy",
                [FieldError(f"spec.{p.field}", p.message, p.allowed, p.code) for p in problems],
            )
        mine = await self._mine(ident)
        if any((_meta(c).get("labels") or {}).get(DEFINITION_NAME_LABEL) == definition.name
               for c in mine):  # fmt: skip
            raise ApiError(
                409,
                f"you have a definition called {definition.name!r} already",
                [FieldError("name", "is taken", "a name none of your definitions has")],
            )
        if len(mine) >= ent.max_definitions:
            raise ApiError(
                409,
                f"you have {len(mine)} definitions; your limit is {ent.max_definitions}",
                [FieldError("name", "one definition too many", "delete one first", "quota")],
            )
        assert spec.image is not None
        definition = Definition(**{**definition.__dict__, "spec": spec})
        def_id = new_job_id(definition.name)
        queue = await gw._queue_for(ident, ent, spec)
        await gw.homes.ensure(gw.policy, ident.name)
        job = render_job(
            spec,
            owner=ident.name,
            job_id=def_id,
            entitlement=ent,
            policy=gw.policy,
            image=spec.image,
            namespace=self.kube.namespace,
            upload_secret_name=upload_secret_name(def_id),
            gateway_url=gw.public_url,
            queue=queue,
        )
        cronjob = render_cronjob(job, definition, definition_id=def_id, owner=ident.name)
        cronjob["metadata"]["annotations"][SCHEDULED_ANNOTATION] = (
            "1" if definition.schedule is not None else "0"
        )
        try:
            created = await self.kube.request("POST", self.kube.cronjobs_path(), body=cronjob)
        except KubeError as exc:
            raise from_kube(exc, "saving the definition") from None
        log.info("definition %s saved by %s", def_id, ident.name)
        return self.view(created)

    async def set_paused(self, ident: Identity, name: str, paused: bool) -> dict[str, Any]:
        cj = await self._find(ident, name)
        if (_meta(cj).get("annotations") or {}).get(SCHEDULED_ANNOTATION) != "1":
            raise ApiError(
                409,
                f"definition {name!r} has no schedule: run it with run-now",
                [FieldError("schedule", "is not set", "a definition saved with a schedule")],
            )
        try:
            patched = await self.kube.request(
                "PATCH",
                self.kube.cronjobs_path(_meta(cj)["name"]),
                body={"spec": {"suspend": paused}},
                content_type="application/merge-patch+json",
            )
        except KubeError as exc:
            raise from_kube(exc, "pausing or resuming the definition") from None
        return self.view(patched)

    async def run_now(self, ident: Identity, name: str) -> dict[str, Any]:
        """An ordinary job from the definition's spec (its own id, Secret and quota check),
        labelled with the definition."""
        cj = await self._find(ident, name)
        gw = self.gateway
        ent = gw.entitlement(ident)
        raw = (_meta(cj).get("annotations") or {}).get(SPEC_ANNOTATION) or "{}"
        try:
            spec = parse_job_spec(json.loads(raw))
        except (SpecError, ValueError):
            raise ApiError(409, f"definition {name!r} no longer parses; save it again") from None
        def_id = (_meta(cj).get("labels") or {}).get(DEFINITION_LABEL, "")
        _, job = await gw._create(ident, ent, spec, None, None, {DEFINITION_LABEL: def_id})
        return job

    async def delete(self, ident: Identity, name: str) -> dict[str, Any]:
        """The CronJob, its runs and its upload Secret (owner references)."""
        cj = await self._find(ident, name)
        try:
            await self.kube.request(
                "DELETE",
                self.kube.cronjobs_path(_meta(cj)["name"]),
                query={"propagationPolicy": "Background"},
            )
        except KubeError as exc:
            if exc.status != 404:
                raise from_kube(exc, "deleting the definition") from None
        return {"name": name, "deleted": True}

    # ------------------------------------------------------------------ scheduled runs
    async def keep_credentials(self) -> list[str]:
        """Give every gated run pod its run's credential, then lift the gate; the runs done."""
        done = []
        for pod in list(self.gateway.cache.pods.values()):
            meta = _meta(pod)
            labels = meta.get("labels") or {}
            gates = (pod.get("spec") or {}).get("schedulingGates") or []
            if not labels.get(DEFINITION_LABEL) or not any(
                g.get("name") == UPLOAD_CREDENTIAL_GATE for g in gates
            ):
                continue
            if meta.get("deletionTimestamp"):
                continue
            run = str(labels.get(JOB_NAME_LABEL, ""))
            try:
                await self._credential_for(pod)
                # The run's own id on its Job and pod (the template can only give them the
                # definition's), so that quota, usage and the queue count the run itself.
                relabel = {"metadata": {"labels": {JOB_ID_LABEL: run}}}
                job = self.gateway.cache.job(run)
                if job is not None and (_meta(job).get("labels") or {}).get(JOB_ID_LABEL) != run:
                    await self.kube.request(
                        "PATCH",
                        self.kube.jobs_path(run),
                        body=relabel,
                        content_type="application/merge-patch+json",
                    )
                ungated = [g for g in gates if g.get("name") != UPLOAD_CREDENTIAL_GATE]
                await self.kube.request(
                    "PATCH",
                    self.kube.pods_path(meta["name"]),
                    body={**relabel, "spec": {"schedulingGates": ungated}},
                    content_type="application/merge-patch+json",
                )
            except (KubeError, ApiError) as exc:
                log.warning("scheduled run pod %s not started yet: %s", meta.get("name"), exc)
                continue
            done.append(run)
        return done

    async def _credential_for(self, pod: dict[str, Any]) -> None:
        gw = self.gateway
        labels = _meta(pod).get("labels") or {}
        def_id, run = labels[DEFINITION_LABEL], labels.get(JOB_NAME_LABEL, "")
        owner = (_meta(pod).get("annotations") or {}).get(OWNER_ANNOTATION, "")
        if gw.storage is None or not run or not owner:
            raise ApiError(503, "S3 is not configured")
        name = upload_secret_name(def_id)
        try:
            current = await self.kube.request("GET", self.kube.secrets_path(name))
        except KubeError as exc:
            if exc.status != 404:
                raise
            current = None
        if current is not None and (
            (_meta(current).get("annotations") or {}).get(UPLOAD_RUN_ANNOTATION) == run
        ):
            return
        try:
            cj = await self.kube.request("GET", self.kube.cronjobs_path(def_id))
        except KubeError as exc:
            if exc.status == 404:
                raise ApiError(404, "the definition is gone") from None
            raise
        job = gw.cache.job(run) or {}
        runtime = int((job.get("spec") or {}).get("activeDeadlineSeconds") or 86400)
        credential = await gw.storage.upload_credential(owner, run, credential_lifetime(runtime))
        secret = render_upload_secret(
            owner=owner,
            job_id=run,
            namespace=self.kube.namespace,
            name=name,
            credential=credential,
            group=labels.get(GROUP_LABEL, ""),
            gpus=int(labels.get(GPUS_LABEL, "0") or 0),
        )
        secret["metadata"].setdefault("annotations", {})[UPLOAD_RUN_ANNOTATION] = run
        secret["metadata"]["ownerReferences"] = [
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "name": def_id,
                "uid": _meta(cj)["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        if current is None:
            await self.kube.request("POST", self.kube.secrets_path(), body=secret)
        else:
            secret["metadata"]["resourceVersion"] = _meta(current).get("resourceVersion")
            await self.kube.request("PUT", self.kube.secrets_path(name), body=secret)

    async def keep_credentials_forever(self) -> None:
        while True:
            try:
                await self.keep_credentials()
            except Exception:  # noqa: BLE001 - logged; the next change tries again
                log.exception("giving scheduled runs their credentials failed")
            await self.gateway.cache.wait_changed(30)
