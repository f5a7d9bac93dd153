"""What the gateway does for a caller (no HTTP here): submit, list, get, cancel, resubmit,
logs and outputs, with the ownership rule applied in one place (:meth:`Gateway.visible`).

Reads come from the watch cache (:class:`~.cache.ClusterCache`), never from the API server.
Writes: create the Job, then its upload Secret owned by the Job (garbage-collected with it);
cancel patches the Job's ``gpulab.io/cancelled-at`` annotation first, then deletes it with
background propagation. A Job left without its Secret (a failed create, a crash in
between) is failed and deleted by the half-made reconciler (:mod:`.reconcile`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from gpulab.wire.runner import job_state_dir

from ...catalogue import Catalogue, Image
from ...kueue.names import (
    PRIORITY_BATCH,
    PRIORITY_PREEMPTIBLE,
    preemptible_local_queue,
    user_local_queue,
)
from ...names import escape_username
from ...policy import Entitlement, Policy, PolicyFile
from ...workload.admission import WorkloadRequest, quota_problems, request_problems
from ...workload.holdings import GpuUsage
from ...workload.labels import (
    FAILED_REASON_ANNOTATION,
    GPUS_LABEL,
    GROUP_LABEL,
    NEVER_STARTED_ANNOTATION,
    OWNER_ANNOTATION,
    PREEMPTED_GPU_SECONDS_ANNOTATION,
    PREEMPTIONS_ANNOTATION,
    SUBMIT_KEY_LABEL,
    USER_LABEL,
)
from ...workload.quota_ledger import QuotaLedger
from ...workload.reservations import Reservation, usage_with
from ..ids import is_job_id, new_job_id, submit_key, valid_idempotency_key
from ..image_readiness import job_image_problem
from ..manifest import (
    JobQueue,
    JobReport,
    render_job,
    render_rank_service,
    render_upload_job,
    render_upload_secret,
    upload_job_name,
    upload_secret_name,
    with_owner,
)
from ..spec import FieldError, JobSpec, SpecError, parse_job_spec, parses_quickly
from ..storage import AsyncJobStorage, credential_lifetime
from ..sweep import run_name
from ..validate import effective_runtime, job_request
from .auth import Identity
from .cache import ClusterCache
from .errors import ApiError, from_kube
from .homes import HomeClaims
from .inflight import InFlight, needs_ledger
from .kube import Kube, KubeError
from .listing import JobListQuery, api_time, decode_cursor, encode_cursor
from .queue import (
    QueueBook,
    UserQueues,
    busy_gpus,
    is_kueue_job,
    is_queued,
    preemption,
    queue_info,
)
from .reconcile import HALF_MADE_REASON, half_made_candidates, is_half_made
from .state import (
    CANCEL_REASON_ANNOTATION,
    CANCELLED_ANNOTATION,
    CANCELLED_BY_ANNOTATION,
    CONTAINER,
    TERMINAL,
    is_finished,
    job_state,
    job_view,
    nodes_of,
    rank_of,
)
from .sweep_runs import is_sweep, pod_index, run_states, runs_view, sweep_size, upload_of_runs
from .tombstones import TombstoneStore, expired
from .uploads import UPLOAD_STATES, awaiting_upload, upload_job_outcome
from .usage import cache_job_slots, cache_usage

__all__ = ["Gateway", "JobRef"]

log = logging.getLogger("gpulab.jobs.gateway")

_B32 = "abcdefghijklmnopqrstuvwxyz234567"
# A finished job whose upload is pending: S3 is asked for its result.json at most this often.
UPLOAD_RECHECK_SECONDS = 30.0
# Its upload Job: pods retried this often (exit 75 while S3 is unreachable), within this time.
UPLOAD_JOB_RETRIES = 6
UPLOAD_JOB_DEADLINE_SECONDS = 86400
# The repairs (half-made, expired, pending uploads) walk every Job: after a watch event they
# run at most this often, so a submit rush (several events per submit) costs one pass a
# second, not one per event.
RECONCILE_MIN_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class JobRef:
    """A job the caller may see: its objects as the cache holds them."""

    id: str
    owner: str
    job: dict[str, Any]
    pods: list[dict[str, Any]]
    gone: bool  # a tombstone: the Job was cancelled and Kubernetes removed it


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _deterministic_id(name: str, key: str) -> str:
    digest = hashlib.sha256(key.encode()).digest()
    bits = int.from_bytes(digest[:4], "big")
    return name + "-" + "".join(_B32[(bits >> (5 * i)) & 31] for i in range(6))


def _tail_lines(data: bytes, tail: int | None) -> bytes:
    if tail is None:
        return data
    if tail == 0:
        return b""
    lines = data.splitlines(keepends=True)
    return b"".join(lines[-tail:])


class Gateway:
    def __init__(
        self,
        *,
        kube: Kube,
        cache: ClusterCache,
        policy_file: PolicyFile,
        storage: AsyncJobStorage | None,
        catalogue: Catalogue | None,
        public_url: str | None = None,
        homes: HomeClaims | None = None,
        queues: UserQueues | None = None,
        culler_url: str | None = None,
    ) -> None:
        self.kube = kube
        # Where GPU jobs' runners report their GPUs' utilisation (None: they do not).
        self.culler_url = culler_url
        # Kueue runs: jobs are queued through it (``queues`` makes a user's LocalQueues);
        # None: gpulab's own admission (quota check, ledger, 429).
        self.queues = queues
        self.cache = cache
        # Which home claims exist (a watch): a submit creates its owner's only when missing.
        self.homes = homes if homes is not None else HomeClaims(kube)
        self.policy_file = policy_file
        self.storage = storage
        self.catalogue = catalogue
        self.public_url = public_url
        # The quota arbiter shared with the spawner: a submit reserves its job's GPUs and job
        # slot in its quota group's ledger, counted until the Job is in this cache.
        self.ledger = QuotaLedger(kube, kube.namespace)
        # Every reservation of a submit in flight; job slots are arbitrated here alone.
        self.inflight = InFlight(ttl=self.ledger.ttl)
        self._upload: dict[str, str] = {}  # job id -> ok|failed once result.json says so
        # a sweep's runs' result.json read from S3 so far: job id -> {index: result}
        self._run_results: dict[str, dict[int, dict[str, Any]]] = {}
        self._upload_checked: dict[str, float] = {}  # job id -> when S3 was last asked
        self._views: dict[str, tuple[Any, dict[str, Any]]] = {}
        self.tombstones = TombstoneStore(storage) if storage is not None else None
        self.ready = False  # set once the cache is synced and cancelled jobs are loaded
        # Job uids whose upload Secret was seen: the Secret is owned by its Job, so it is
        # not checked again (one GET per Job, not per watch event).
        self._secret_seen: set[str] = set()
        self._book: tuple[int, QueueBook, dict[str, int]] | None = None

    async def load_tombstones(self) -> None:
        if self.tombstones is not None:
            self.cache.add_tombstones(await self.tombstones.load_all())

    @property
    def policy(self) -> Policy:
        return self.policy_file.policy

    # ------------------------------------------------------------------ identity, policy
    def entitlement(self, ident: Identity) -> Entitlement:
        ent = self.policy.entitlement(groups=list(ident.groups))
        if ent is None:
            raise ApiError(
                403,
                "your groups give you no access to gpulab jobs; ask an admin to add you to a group",
            )
        return ent

    def me(self, ident: Identity) -> dict[str, Any]:
        ent = self.policy.entitlement(groups=list(ident.groups))
        user_label = escape_username(ident.name)
        out: dict[str, Any] = {
            "name": ident.name,
            "groups": list(ident.groups),
            "admin": ident.admin,
        }
        if ent is None:
            out["quota"] = None
            out["policy"] = None
            return out
        group = ent.quota_group
        usage = cache_usage(self.cache, user_label, group)
        out["quota"] = {
            "gpus_user_used": usage.user,
            "gpus_user_limit": ent.gpu_quota_user,
            "group": group,
            "gpus_group_used": usage.group,
            "gpus_group_limit": ent.gpu_quota_group.get(group, 0),
            "jobs_unfinished": usage.jobs,
            "jobs_limit": ent.max_concurrent_jobs,
        }
        if self.queues is not None:  # with Kueue: what bounds a submit is the waiting jobs
            out["quota"]["jobs_queued"] = self._waiting(user_label)
            out["quota"]["jobs_queued_limit"] = ent.max_queued_jobs
        out["policy"] = {
            "per_job": ent.gpu_per_job,
            "max_runtime": ent.max_job_runtime_seconds,
            "max_retries": ent.max_retries,
            "gpu_types": sorted(ent.gpu_types),
            "datasets": [d.name for d in self.policy.storage.datasets],
        }
        return out

    # ------------------------------------------------------------------ seeing jobs
    def _ref(self, job_id: str) -> JobRef | None:
        job = self.cache.job(job_id)
        gone = False
        pods: list[dict[str, Any]]
        if job is None:
            stone = self.cache.tombstones.get(job_id)
            if stone is None:
                return None
            job, pods, gone = stone["job"], list(stone["pods"]), True
        else:
            pods = self.cache.job_pods(job_id)
        meta = _meta(job)
        owner = (meta.get("annotations") or {}).get(OWNER_ANNOTATION) or ""
        return JobRef(job_id, owner, job, pods, gone)

    def visible(self, ident: Identity, job_id: str) -> JobRef:
        """The job if the caller owns it or is an admin; 404 otherwise (existence is not
        leaked: another user's job answers exactly like a job that does not exist)."""
        not_found = ApiError(404, f"no job {job_id[:60]!r}")
        if not is_job_id(job_id):
            raise not_found
        ref = self._ref(job_id)
        if ref is None:
            raise not_found
        label = (_meta(ref.job).get("labels") or {}).get(USER_LABEL)
        if ident.admin or (ref.owner == ident.name and label == escape_username(ident.name)):
            return ref
        raise not_found

    def view(self, ref: JobRef) -> dict[str, Any]:
        upload = self._upload.get(ref.id)
        kueue = is_kueue_job(ref.job)
        workload = self.cache.workload(ref.id) if kueue and not ref.gone else None
        signature = (
            _meta(ref.job).get("resourceVersion"),
            tuple(sorted(_meta(p).get("resourceVersion") or "" for p in ref.pods)),
            upload,
            ref.gone,
            _meta(workload or {}).get("resourceVersion"),
            self.cache.preempted.get(ref.id),
            # a queued job's place moves with every other job: recomputed on any change
            self.cache.version if kueue and is_queued(ref.job) else None,
        )
        hit = self._views.get(ref.id)
        if hit is not None and hit[0] == signature:
            return hit[1]
        value = job_view(ref.job, ref.pods, upload=upload)
        if kueue:
            self._add_queue(ref, value, workload)
        self._views[ref.id] = (signature, value)
        if len(self._views) > 100_000:
            self._views.clear()
        return value

    def _queue_book(self) -> tuple[QueueBook, dict[str, int]]:
        """Every group's waiting work in order, and the GPUs each group holds (per change)."""
        version = self.cache.version
        if self._book is None or self._book[0] != version:
            pods, jobs = list(self.cache.pods.values()), list(self.cache.jobs.values())
            book = QueueBook.build(jobs, pods)
            self._book = (version, book, busy_gpus(pods, jobs))
        return self._book[1], self._book[2]

    def _add_queue(
        self, ref: JobRef, value: dict[str, Any], workload: dict[str, Any] | None
    ) -> None:
        """A Kueue job's queue place and reason (Queued) and what preemption cost it."""
        lost = preemption(ref.job, workload, self.cache.preempted.get(ref.id))
        value["preemptions"] = lost.count
        value["gpu_hours_lost"] = lost.gpu_hours
        value["queue"] = None
        if value["state"] != "Queued":
            return
        book, busy = self._queue_book()
        group = value.get("group") or ""
        group_policy = self.policy.groups.get(group)
        quota = group_policy.gpu.quota_group if group_policy is not None else 0
        info = queue_info(
            ref.job,
            book,
            gpus_busy=busy.get(group, 0),
            gpus_quota=quota or None,
            workload=workload,
        )
        if info is None:
            return
        value["queue"] = info.as_dict()
        message = info.message()
        if lost.count:
            message = f"Preempted, requeued ({lost.count}×): {message}"
        value["message"] = message

    async def get(self, ident: Identity, job_id: str) -> dict[str, Any]:
        ref = self.visible(ident, job_id)
        view = self.view(ref)
        if is_sweep(view.get("spec")):
            return await self._with_runs(ref, view)
        if view["state"] in TERMINAL and ref.id not in self._upload:
            await self._learn_upload(ref)
            view = self.view(ref)
        return view

    async def _with_runs(self, ref: JobRef, view: dict[str, Any]) -> dict[str, Any]:
        """A sweep's view with its ``runs``; a run's result.json is read from S3 once, when
        the run has ended (a finished sweep's upload state follows from its runs')."""
        spec = view["spec"]
        known = self._run_results.setdefault(ref.id, {})
        if len(self._run_results) > 10_000:
            self._run_results = {ref.id: known}
        states = run_states(ref.job, ref.pods, sweep_size(spec), view["state"])
        missing = [
            i
            for i, state in enumerate(states)
            if state in ("Succeeded", "Failed") and i not in known
        ]
        if self.storage is not None and missing:
            storage = self.storage
            results = await asyncio.gather(
                *(storage.result(ref.owner, ref.id, run_name(i)) for i in missing),
                return_exceptions=True,
            )
            for index, result in zip(missing, results, strict=True):
                if isinstance(result, dict):
                    known[index] = result
        out = {**view, "runs": runs_view(spec, ref.job, ref.pods, view["state"], known)}
        if view["state"] in TERMINAL:
            self._upload[ref.id] = out["upload"] = upload_of_runs(states, known)
        return out

    async def _learn_upload(self, ref: JobRef) -> None:
        if self.storage is None:
            return
        view = self.view(ref)
        if is_sweep(view.get("spec")):
            await self._with_runs(ref, view)
            return
        try:
            result = await self.storage.result(ref.owner, ref.id)
        except Exception as exc:  # noqa: BLE001 - S3 trouble must not break a status read
            log.warning("result.json of %s unreadable: %s", ref.id, type(exc).__name__)
            return
        self._note_result(ref.id, result)

    def _note_result(self, job_id: str, result: dict[str, Any] | None) -> None:
        """Remember the upload state ``result.json`` (in S3) gives; absent: still pending."""
        if result is None:
            return
        upload = result.get("upload")
        if isinstance(upload, dict):
            upload = upload.get("status")
        self._upload[job_id] = upload if upload in UPLOAD_STATES else "ok"

    # ------------------------------------------------------------------ uploads after S3 outages
    async def retry_uploads(self) -> list[str]:
        """For each finished job whose upload is still pending (no result.json in S3), once S3
        answers again, make sure its upload Job exists; ids of the upload Jobs created. Each
        job is looked at most every ``UPLOAD_RECHECK_SECONDS``."""
        if self.storage is None:
            return []
        now = time.monotonic()
        candidates = awaiting_upload(
            list(self.cache.jobs.items()), self.cache.job_pods, self._upload
        )
        self._upload_checked = {
            k: v for k, v in self._upload_checked.items() if k in self.cache.jobs
        }
        created = []
        for job_id in candidates:
            if now - self._upload_checked.get(job_id, -UPLOAD_RECHECK_SECONDS) < (
                UPLOAD_RECHECK_SECONDS
            ):
                continue
            ref = self._ref(job_id)
            # a sweep's runs that could not upload keep their files on the home: an upload
            # Job runs one runner, not one per index
            if ref is None or ref.gone or is_sweep(self.view(ref).get("spec")):
                continue
            self._upload_checked[job_id] = now
            try:
                result = await self.storage.result(ref.owner, job_id)
            except Exception as exc:  # noqa: BLE001 - S3 still down: try again later
                log.info("S3 unavailable (%s); pending uploads wait", type(exc).__name__)
                return created
            if result is not None:
                self._note_result(job_id, result)
                continue
            if await self._ensure_upload_job(ref):
                created.append(job_id)
        return created

    async def _ensure_upload_job(self, ref: JobRef) -> bool:
        """Create the job's upload Job and its Secret unless it exists; True if created. An
        upload Job that ran out of retries marks the upload ``failed``."""
        assert self.storage is not None
        name = upload_job_name(ref.id)
        try:
            existing = await self.kube.request("GET", self.kube.jobs_path(name))
        except KubeError as exc:
            if exc.status != 404:
                log.warning("upload job of %s not checked: %s", ref.id, exc)
                return False
            existing = None
        if existing is not None:
            if upload_job_outcome(existing) == "failed":
                log.warning("upload job of %s failed; the outputs stay on the home", ref.id)
                self._upload[ref.id] = "failed"
            return False
        credential = await self.storage.upload_credential(
            ref.owner, ref.id, credential_lifetime(UPLOAD_JOB_DEADLINE_SECONDS)
        )
        body = render_upload_job(
            ref.job,
            secret_name=name,
            retries=UPLOAD_JOB_RETRIES,
            deadline_seconds=UPLOAD_JOB_DEADLINE_SECONDS,
        )
        try:
            created = await self.kube.request("POST", self.kube.jobs_path(), body=body)
        except KubeError as exc:
            if exc.status != 409:
                log.warning("upload job of %s not created: %s", ref.id, exc)
            return False
        labels = _meta(ref.job).get("labels") or {}
        secret = render_upload_secret(
            owner=ref.owner,
            job_id=ref.id,
            namespace=self.kube.namespace,
            name=name,
            credential=credential,
            group=labels.get(GROUP_LABEL, ""),
        )
        try:
            await self.kube.request(
                "POST", self.kube.secrets_path(), body=with_owner(secret, created)
            )
        except KubeError as exc:
            if exc.status != 409:
                # without its Secret the pod cannot start: delete, the next pass retries
                log.warning("upload secret of %s not created (%s)", ref.id, exc)
                with contextlib.suppress(KubeError):
                    await self.kube.request(
                        "DELETE",
                        self.kube.jobs_path(name),
                        query={"propagationPolicy": "Background"},
                    )
                return False
        log.info("job %s: upload job created (its upload was pending)", ref.id)
        return True

    def list(self, ident: Identity, query: JobListQuery) -> dict[str, Any]:
        """One page of the jobs the caller may see, newest first, read from the cache's list
        index (a page costs its own length, not the number of jobs). Anyone but an admin sees
        their own jobs only, whatever the filters say: naming another user lists nothing."""
        owner = query.user
        if not ident.admin:
            if owner not in (None, ident.name):
                return {"items": [], "continue": None}
            owner = ident.name
        entries, last = self.cache.index.page(
            limit=query.limit,
            owner=owner,
            group=query.group,
            state=query.state,
            created_since=api_time(query.created_since) if query.created_since else None,
            created_before=api_time(query.created_before) if query.created_before else None,
            after=decode_cursor(query.continue_) if query.continue_ else None,
        )
        items = []
        for entry in entries:
            ref = self._ref(entry.id)
            if ref is not None:
                items.append(self.view(ref))
        return {"items": items, "continue": encode_cursor(last) if last else None}

    # ------------------------------------------------------------------ submit
    def _default_image(self, ident: Identity) -> str | None:
        for pod in self.cache.server_pods(escape_username(ident.name)):
            for container in (pod.get("spec") or {}).get("containers") or []:
                for env in container.get("env") or []:
                    if env.get("name") == "GPULAB_IMAGE" and env.get("value"):
                        return str(env["value"])
                if container.get("image"):
                    return str(container["image"])
        return None

    async def submit(
        self,
        ident: Identity,
        raw: bytes | dict[str, Any],
        content_type: str | None,
        idempotency_key: str | None,
    ) -> tuple[int, dict[str, Any]]:
        """(201, job) for a new job; (200, job) for a retried submit with the same key."""
        ent = self.entitlement(ident)
        skey = None
        if idempotency_key is not None:
            if not valid_idempotency_key(idempotency_key):
                raise ApiError(
                    400,
                    "bad Idempotency-Key header",
                    [
                        FieldError(
                            "Idempotency-Key",
                            "is not a valid key",
                            "1-255 printable ASCII characters, no spaces",
                        )
                    ],
                )
            skey = submit_key(ident.name, idempotency_key)
            existing = self._existing(ident, skey)
            if existing is not None:
                await self._ensure_secret(existing)
                return 200, self.view(existing)
        try:
            if parses_quickly(raw, content_type):
                spec = parse_job_spec(raw, content_type)
            else:  # YAML or a large document: not on the event loop
                spec = await asyncio.to_thread(parse_job_spec, raw, content_type)
        except SpecError as exc:
            raise ApiError(422, "the job spec is not valid", exc.problems) from None
        spec = self.with_default_image(ident, spec)
        return await self._create(ident, ent, spec, idempotency_key, skey)

    def with_default_image(self, ident: Identity, spec: JobSpec) -> JobSpec:
        """``spec`` with the caller's default image when it names none (the policy check
        reports an image the spec refuses)."""
        if spec.image is not None or (image := self._default_image(ident)) is None:
            return spec
        try:
            return spec.with_image(image)
        except Exception:  # noqa: BLE001 - a server image the spec refuses: said by the check
            return spec

    async def validate(
        self, ident: Identity, raw: bytes, content_type: str | None
    ) -> dict[str, Any]:
        """A dry run of :meth:`submit`: every problem the spec has, against the schema and
        then the caller's policy (GPU types, limits, images), field by field. Creates nothing,
        reserves nothing; quota in use right now is not a problem here (it would queue)."""
        ent = self.entitlement(ident)
        try:
            spec = await asyncio.to_thread(parse_job_spec, raw, content_type)
        except SpecError as exc:
            return {"valid": False, "problems": [p.as_dict() for p in exc.problems]}
        problems = await self.policy_problems(ident, ent, self.with_default_image(ident, spec))
        return {"valid": not problems, "problems": [p.as_dict() for p in problems]}

    async def policy_problems(
        self, ident: Identity, ent: Entitlement, spec: JobSpec
    ) -> list[FieldError]:
        """What the caller's policy refuses in ``spec`` (GPU types, limits, images); GPUs in
        use right now are no problem here (a job would queue)."""
        images = {img.reference for img in await self._catalogue_list()} or None
        request = job_request(spec, ent, self.policy, catalogue_images=images)
        return [p for p in request_problems(request) if p.code != "quota"]

    def _in_cache(self, entry: Reservation) -> bool:
        """Whether this cache holds a reservation's object (then the cache counts it)."""
        names = self.cache.jobs if entry.kind == "job" else self.cache.pods
        return entry.name in names

    def _counted(
        self, user_label: str, group: str, *, slots_only: bool = False, excluding: str = ""
    ) -> GpuUsage:
        """What the user and the group hold: the cache, plus this gateway's submits in flight
        but ``excluding`` (the key of the one being checked); ``slots_only``: the user's job
        slots alone, from the cache's by-user index."""
        counted = (
            cache_job_slots(self.cache, user_label)
            if slots_only
            else cache_usage(self.cache, user_label, group)
        )
        return usage_with(
            counted,
            [e for e in self.inflight.entries(group, self._in_cache) if e.key != excluding],
            user=user_label,
            now=self.inflight.clock(),
            seen=self._in_cache,
        )

    async def _reserve(
        self, user_label: str, ent: Entitlement, job_id: str, request: WorkloadRequest
    ) -> None:
        """Check the quota and reserve the job's GPUs, CPU, memory and job slot (429 when the
        quota is in use): across processes through the group's ledger when the spawner counts
        any of it, else in this process alone (see :mod:`.inflight`)."""
        group = ent.quota_group
        mine = self.inflight.reservation(request, user_label, job_id)
        if self.queues is not None:
            self._hold_queue_place(user_label, ent, mine)
            return
        if not needs_ledger(request):
            # No await from counting to adding: two submits cannot both take the last slot.
            usage = self._counted(user_label, group, slots_only=True)
            problems = quota_problems(request, usage)
            if not problems:
                self.inflight.add(group, mine)
        else:
            # Held here while the ledger is asked: a submit checked here alone meanwhile
            # counts it (dropped again if the ledger refuses).
            self.inflight.add(group, mine)
            try:
                problems = await self.ledger.reserve(
                    group,
                    "job",
                    job_id,
                    user=user_label,
                    gpus=request.held_gpus,
                    demand=request.requested,
                    counted=lambda: self._counted(user_label, group, excluding=mine.key),
                    # a ledger entry of this gateway is counted once: from self.inflight
                    seen=lambda e: self._in_cache(e) or self.inflight.holds(group, e.key),
                    check=lambda usage: quota_problems(request, usage),
                )
            except BaseException as exc:
                self.inflight.drop(group, mine.key)
                if isinstance(exc, KubeError):
                    raise from_kube(exc, "checking your quota") from None
                raise
            if problems:
                self.inflight.drop(group, mine.key)
        if problems:
            raise ApiError(
                429,
                "not now: your quota (GPUs, CPU, memory or jobs) is in use",
                problems,
                retry_after=60,
            )

    def _waiting(self, user_label: str) -> int:
        """The user's jobs waiting in their queues, as the cache holds them."""
        jobs = (self.cache.job(name) for name in self.cache.user_job_ids(user_label))
        return sum(1 for job in jobs if job is not None and is_queued(job))

    def _hold_queue_place(self, user_label: str, ent: Entitlement, mine: Reservation) -> None:
        """With Kueue the quota is Kueue's: what a submit is refused for here is only what
        queueing cannot help, the user's jobs already waiting (``jobs.max_queued``). Counted
        from the cache plus this gateway's submits in flight, with no ``await`` from counting
        to holding the place (two submits cannot both take the last one)."""
        group = ent.quota_group
        waiting = self._waiting(user_label) + sum(
            1 for e in self.inflight.entries(group, self._in_cache) if e.user == user_label
        )
        limit = ent.max_queued_jobs
        if waiting >= limit:
            raise ApiError(
                429,
                f"not now: you have {waiting} jobs waiting in the queue, the most one user may "
                "have waiting (jobs.max_queued in the policy); queueing more cannot help",
                [
                    FieldError(
                        "jobs",
                        f"{waiting} of your jobs are waiting in the queue",
                        f"at most {limit} may wait at once; cancel one or wait until one starts",
                        "quota",
                    )
                ],
                retry_after=60,
            )
        self.inflight.add(group, mine)

    async def _release(self, group: str, job_id: str, *, ledgered: bool = True) -> None:
        """Free a reservation whose Job was not made or is cancelled (else it expires); in the
        ledger too unless the reservation is known never to have been written there."""
        self.inflight.drop(group, f"job.{job_id}")
        if not ledgered:
            return
        try:
            await self.ledger.release(group, "job", job_id)
        except KubeError as exc:
            log.warning("quota reservation of job %s not released (%s); it expires", job_id, exc)

    def _existing(self, ident: Identity, skey: str) -> JobRef | None:
        job = self.cache.job_for_submit_key(skey)
        if job is None:
            return None
        ref = self._ref(_meta(job)["name"])
        if ref is None or ref.owner != ident.name:
            return None
        return ref

    async def _catalogue_list(self) -> list[Image]:
        if self.catalogue is None:
            return []
        try:
            return await self.catalogue.images()
        except Exception:  # noqa: BLE001 - the catalogue never raises; be sure anyway
            return []

    async def _create(
        self,
        ident: Identity,
        ent: Entitlement,
        spec: JobSpec,
        idempotency_key: str | None,
        skey: str | None,
        extra_labels: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        policy = self.policy
        if self.storage is None:
            raise ApiError(
                503, "job outputs storage (S3) is not configured; ask an admin", retry_after=60
            )
        listed = await self._catalogue_list()
        images = {img.reference for img in listed} or None
        if problem := job_image_problem(listed, spec):
            raise ApiError(422, "the job's image cannot run it", [problem])
        user_label = escape_username(ident.name)
        if skey is not None and (existing := self._existing(ident, skey)) is not None:
            return 200, self.view(existing)
        request = job_request(spec, ent, policy, catalogue_images=images)
        problems = request_problems(request)
        if problems:
            raise ApiError(422, "the job is not allowed by the policy", problems)
        assert spec.image is not None
        job_id = _deterministic_id(spec.name, skey) if skey else new_job_id(spec.name)
        # Check + reserve (one conditional write when the ledger is needed; with Kueue, a
        # place in the queue); the Job is created only after it.
        ledgered = needs_ledger(request) and self.queues is None
        report = JobReport.new(self.culler_url) if self.culler_url and spec.total_gpus > 0 else None
        await self._reserve(user_label, ent, job_id, request)
        try:
            queue = await self._queue_for(ident, ent, spec)
            await self.homes.ensure(policy, ident.name)
            runtime = effective_runtime(spec, ent)
            for attempt in range(4):
                credential = await self.storage.upload_credential(
                    ident.name, job_id, credential_lifetime(runtime)
                )
                manifest = render_job(
                    spec,
                    owner=ident.name,
                    job_id=job_id,
                    entitlement=ent,
                    policy=policy,
                    image=spec.image,
                    namespace=self.kube.namespace,
                    upload_secret_name=upload_secret_name(job_id),
                    gateway_url=self.public_url,
                    idempotency_key=idempotency_key,
                    queue=queue,
                    report=report,
                    extra_labels=extra_labels,
                )
                try:
                    created = await self.kube.request("POST", self.kube.jobs_path(), body=manifest)
                    break
                except KubeError as exc:
                    if exc.status != 409 or attempt == 3:
                        raise from_kube(exc, "creating the job") from None
                    if skey is not None:
                        try:
                            other = await self.kube.request("GET", self.kube.jobs_path(job_id))
                        except KubeError as exc2:
                            raise from_kube(exc2, "creating the job") from None
                        if (_meta(other).get("labels") or {}).get(SUBMIT_KEY_LABEL) == skey:
                            self.cache.put_job(other)
                            ref = self._ref(job_id)
                            assert ref is not None
                            await self._ensure_secret(ref)
                            return 200, self.view(ref)
                    await self._release(ent.quota_group, job_id, ledgered=ledgered)
                    job_id = new_job_id(spec.name)
                    await self._reserve(user_label, ent, job_id, request)
            self.cache.put_job(created)
        except BaseException:
            await self._release(ent.quota_group, job_id, ledgered=ledgered)
            raise
        secret = render_upload_secret(
            owner=ident.name,
            job_id=job_id,
            namespace=self.kube.namespace,
            name=upload_secret_name(job_id),
            credential=credential,
            group=ent.quota_group,
            gpus=spec.total_gpus,
            report_token=report.token if report is not None else None,
        )
        try:
            await self.kube.request(
                "POST", self.kube.secrets_path(), body=with_owner(secret, created)
            )
        except KubeError as exc:
            if exc.status != 409:
                log.warning("upload secret of %s not created (%s); deleting the job", job_id, exc)
                # If this delete fails too, the half-made reconciler fails the Job later.
                await self._retry_delete(job_id)
                raise from_kube(exc, "creating the job's upload credential") from None
        if spec.multi_node:
            await self._create_rank_service(job_id, created)
        log.info(
            "job %s submitted by %s (%d GPUs%s)",
            job_id,
            ident.name,
            spec.total_gpus,
            f", queued in {queue.local_queue}" if queue is not None else "",
        )
        ref = self._ref(job_id)
        assert ref is not None
        return 201, self.view(ref)

    async def _create_rank_service(self, job_id: str, created: dict[str, Any]) -> None:
        """A multi-node job's headless Service (its ranks find rank 0 through it); owned by the
        Job, so it goes with it. Without it the ranks cannot meet: the job is deleted."""
        try:
            await self.kube.request(
                "POST", self.kube.services_path(), body=render_rank_service(created)
            )
        except KubeError as exc:
            if exc.status != 409:
                log.warning("rank Service of %s not created (%s); deleting the job", job_id, exc)
                await self._retry_delete(job_id)
                raise from_kube(exc, "creating the job's rank Service") from None

    async def _queue_for(self, ident: Identity, ent: Entitlement, spec: JobSpec) -> JobQueue | None:
        """With Kueue: the job's LocalQueue and priority class, the user's queues made first if
        missing. Without: None (the job is admitted here and runs at once)."""
        if self.queues is None:
            return None
        try:
            await self.queues.ensure(ident.name, ent.quota_group)
        except KubeError as exc:
            raise from_kube(exc, "making your job queue") from None
        if spec.preemptible:
            return JobQueue(preemptible_local_queue(ident.name), PRIORITY_PREEMPTIBLE)
        return JobQueue(user_local_queue(ident.name), PRIORITY_BATCH)

    async def _ensure_secret(self, ref: JobRef) -> None:
        """A retried submit may follow a crash between creating the Job and its Secret:
        make sure the Secret exists (it is what the pod waits for)."""
        if ref.gone or is_finished(ref.job) or self.storage is None:
            return
        name = upload_secret_name(ref.id)
        try:
            await self.kube.request("GET", self.kube.secrets_path(name))
            return
        except KubeError as exc:
            if exc.status != 404:
                raise from_kube(exc, "checking the job's upload credential") from None
        spec = ref.job.get("spec") or {}
        runtime = int(spec.get("activeDeadlineSeconds") or 86400)
        credential = await self.storage.upload_credential(
            ref.owner, ref.id, credential_lifetime(runtime)
        )
        labels = _meta(ref.job).get("labels") or {}
        secret = render_upload_secret(
            owner=ref.owner,
            job_id=ref.id,
            namespace=self.kube.namespace,
            name=name,
            credential=credential,
            group=labels.get(GROUP_LABEL, ""),
            gpus=int(labels.get(GPUS_LABEL, "0") or 0),
        )
        try:
            await self.kube.request(
                "POST", self.kube.secrets_path(), body=with_owner(secret, ref.job)
            )
        except KubeError as exc:
            if exc.status != 409:
                raise from_kube(exc, "creating the job's upload credential") from None

    # ------------------------------------------------------------------ half-made jobs
    async def reconcile_half_made(self, grace_seconds: float) -> list[str]:
        """Fail every Job left without its upload Secret (see ``reconcile``); their ids."""
        now = dt.datetime.now(dt.UTC)
        jobs = [
            (job_id, job)
            for job_id, job in list(self.cache.jobs.items())
            if _meta(job).get("uid") not in self._secret_seen
            # a scheduled run shares its definition's Secret (gateway/definitions.py)
            and not _is_scheduled_run(job)
        ]
        for job_id, job in jobs:
            meta = _meta(job)
            if FAILED_REASON_ANNOTATION in (meta.get("annotations") or {}):
                if not meta.get("deletionTimestamp"):
                    await self._retry_delete(job_id)  # marked, but its delete failed earlier
        failed = []
        for job_id in half_made_candidates(jobs, now, grace_seconds):
            job = self.cache.job(job_id)
            if job is None:
                continue
            try:
                await self.kube.request("GET", self.kube.secrets_path(upload_secret_name(job_id)))
                exists = True
            except KubeError as exc:
                if exc.status != 404:
                    log.warning("upload secret of %s not checked: %s", job_id, exc)
                    continue
                exists = False
            if exists:
                self._secret_seen.add(str(_meta(job).get("uid")))
            elif is_half_made(job, now, grace_seconds, secret_exists=False):
                await self._fail_half_made(job_id)
                failed.append(job_id)
        return failed

    async def reconcile_forever(self, grace_seconds: float) -> None:
        """Reconcile now (the cache is synced), then after watch events (at most once per
        ``RECONCILE_MIN_INTERVAL_SECONDS``), and at least every half grace period (a Job
        crosses the grace period without any event)."""
        while True:
            try:
                await self.reconcile_half_made(grace_seconds)
            except Exception:  # noqa: BLE001 - keep reconciling; the next pass retries
                log.exception("reconciling half-made jobs failed")
            try:
                await self.expire_cancelled(dt.datetime.now(dt.UTC))
            except Exception:  # noqa: BLE001 - the next pass retries
                log.exception("deleting expired cancelled jobs failed")
            try:
                await self.retry_uploads()
            except Exception:  # noqa: BLE001 - the next pass retries
                log.exception("retrying pending uploads failed")
            try:
                await self.record_preemptions()
            except Exception:  # noqa: BLE001 - the next pass retries
                log.exception("recording preemptions failed")
            await self.cache.wait_changed(max(grace_seconds / 2, 1.0))
            await asyncio.sleep(RECONCILE_MIN_INTERVAL_SECONDS)  # the rest of a burst with it

    async def _fail_half_made(self, job_id: str) -> None:
        try:
            await self._annotate(job_id, {FAILED_REASON_ANNOTATION: HALF_MADE_REASON})
        except KubeError as exc:
            if exc.status != 404:
                log.warning("half-made job %s not marked: %s", job_id, exc)
            return
        ref = self._ref(job_id)
        if ref is not None:
            await self._remember(ref.owner, job_id)
        if await self._retry_delete(job_id):
            log.warning("job %s had no upload secret; failed and deleted", job_id)

    async def _retry_delete(self, job_id: str) -> bool:
        try:
            await self._delete_job(job_id)
        except ApiError as exc:
            log.warning("half-made job %s not deleted (retried later): %s", job_id, exc)
            return False
        return True

    async def resubmit(self, ident: Identity, job_id: str) -> tuple[int, dict[str, Any]]:
        ref = self.visible(ident, job_id)
        if ref.owner != ident.name:
            raise ApiError(403, "resubmit runs the job as you; only its owner may resubmit it")
        spec_data = job_view(ref.job, ref.pods)["spec"]
        if not isinstance(spec_data, dict):
            raise ApiError(409, "this job has no recorded spec to resubmit")
        ent = self.entitlement(ident)
        try:
            spec = parse_job_spec(spec_data)
        except SpecError as exc:
            raise ApiError(422, "the recorded spec is no longer valid", exc.problems) from None
        return await self._create(ident, ent, spec, None, None)

    # ------------------------------------------------------------------ cancel
    async def _delete_job(self, job_id: str) -> None:
        try:
            await self.kube.request(
                "DELETE",
                self.kube.jobs_path(job_id),
                query={"propagationPolicy": "Background"},
                body={
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "propagationPolicy": "Background",
                },
            )
        except KubeError as exc:
            if exc.status != 404:
                raise from_kube(exc, "deleting the job") from None

    async def _patch(self, job_id: str, body: dict[str, Any]) -> None:
        """Merge-patch the Job and cache the result (read your own writes)."""
        patched = await self.kube.request(
            "PATCH",
            self.kube.jobs_path(job_id),
            body=body,
            content_type="application/merge-patch+json",
        )
        self.cache.put_job(patched)

    async def _annotate(self, job_id: str, annotations: dict[str, str]) -> None:
        await self._patch(job_id, {"metadata": {"annotations": annotations}})

    async def annotate(self, job_id: str, annotations: dict[str, str]) -> None:
        """Merge annotations into the Job (the notifier's record of what it sent)."""
        await self._annotate(job_id, annotations)

    async def _remember(self, owner: str, job_id: str) -> None:
        """Keep the cancelled Job in S3: it is about to leave the cluster."""
        ref = self._ref(job_id)
        if ref is None or self.tombstones is None:
            return
        try:
            await self.tombstones.save(owner, job_id, ref.job, ref.pods)
        except Exception as exc:  # noqa: BLE001 - cancel anyway; only the history suffers
            log.warning("cancelled job %s not recorded in S3: %s", job_id, type(exc).__name__)

    async def cancel(
        self, ident: Identity, job_id: str, *, reason: str | None = None
    ) -> dict[str, Any]:
        """Mark the Job cancelled and suspend it in one patch: Kubernetes deletes its pods
        (the runner gets SIGTERM and uploads what it has), and the Job object stays as the
        record of the cancel, so the owner's history never depends on S3. The gateway deletes
        it once its ``ttlSecondsAfterFinished`` has passed (:func:`.tombstones.expired`)."""
        ref = self.visible(ident, job_id)
        state, _ = job_state(ref.job, ref.pods)
        if state in ("Succeeded", "Failed"):
            raise ApiError(409, f"job {job_id} already finished ({state}); nothing to cancel")
        if not ref.gone and is_kueue_job(ref.job):
            await self._cancel_queued(ident, ref, reason)
        elif not ref.gone:
            annotations = _meta(ref.job).get("annotations") or {}
            suspended = bool((ref.job.get("spec") or {}).get("suspend"))
            if CANCELLED_ANNOTATION not in annotations or not suspended:
                marks = {CANCELLED_ANNOTATION: _now(), CANCELLED_BY_ANNOTATION: ident.name}
                if reason:
                    marks[CANCEL_REASON_ANNOTATION] = reason
                if not any(_started(p) for p in ref.pods):
                    marks[NEVER_STARTED_ANNOTATION] = "true"  # no upload Job will be needed
                if CANCELLED_ANNOTATION in annotations:  # a retried cancel keeps the first
                    marks = {}
                try:
                    await self._patch(
                        job_id, {"metadata": {"annotations": marks}, "spec": {"suspend": True}}
                    )
                except KubeError as exc:
                    if exc.status == 404:
                        raise ApiError(404, f"no job {job_id!r}") from None
                    raise from_kube(exc, "cancelling the job") from None
            group = (_meta(ref.job).get("labels") or {}).get(GROUP_LABEL)
            if group:
                await self._release(group, job_id)
            log.info("job %s cancelled by %s", job_id, ident.name)
        ref = self._ref(job_id) or ref
        return self.view(ref)

    async def _cancel_queued(self, ident: Identity, ref: JobRef, reason: str | None) -> None:
        """Cancel a job Kueue manages: suspending it would not stop it (Kueue un-suspends
        the Jobs it admits), so the Job is marked cancelled, kept in S3 and the cache as a
        tombstone, and deleted; its Workload goes with it (owned by the Job), and its pods,
        if it was running, get SIGTERM and the grace period as any cancel."""
        job_id = ref.id
        annotations = _meta(ref.job).get("annotations") or {}
        if CANCELLED_ANNOTATION not in annotations:
            marks = {CANCELLED_ANNOTATION: _now(), CANCELLED_BY_ANNOTATION: ident.name}
            if reason:
                marks[CANCEL_REASON_ANNOTATION] = reason
            if not any(_started(p) for p in ref.pods):
                marks[NEVER_STARTED_ANNOTATION] = "true"  # no upload Job will be needed
            try:
                await self._annotate(job_id, marks)
            except KubeError as exc:
                if exc.status == 404:
                    raise ApiError(404, f"no job {job_id!r}") from None
                raise from_kube(exc, "cancelling the job") from None
        await self._remember(ref.owner, job_id)
        await self._delete_job(job_id)
        group = (_meta(ref.job).get("labels") or {}).get(GROUP_LABEL)
        if group:
            await self._release(group, job_id, ledgered=False)
        log.info("queued job %s cancelled by %s", job_id, ident.name)

    async def record_preemptions(self) -> list[str]:
        """Add the evictions the cache saw to their Jobs' annotations (the pods that ran are
        gone after an eviction: this is what keeps the GPU time they had used); job ids."""
        recorded = []
        for job_id, seen in list(self.cache.preempted.items()):
            job = self.cache.job(job_id)
            self.cache.preempted.pop(job_id, None)
            if job is None:
                continue
            total = preemption(job, None, seen)
            try:
                await self._annotate(
                    job_id,
                    {
                        PREEMPTIONS_ANNOTATION: str(total.count),
                        PREEMPTED_GPU_SECONDS_ANNOTATION: f"{total.gpu_seconds:.0f}",
                    },
                )
            except KubeError as exc:
                if exc.status != 404:
                    log.warning("preemption of job %s not recorded (retried): %s", job_id, exc)
                    self.cache.preempted.setdefault(job_id, seen)
                continue
            log.info("job %s preempted and requeued (%d×)", job_id, total.count)
            recorded.append(job_id)
        return recorded

    async def expire_cancelled(self, now: dt.datetime) -> list[str]:
        """Delete the cancelled Jobs kept past their ``ttlSecondsAfterFinished``; their ids."""
        gone = []
        for job_id in expired(list(self.cache.jobs.items()), now):
            try:
                await self._delete_job(job_id)
            except ApiError as exc:
                log.warning("cancelled job %s not deleted (retried later): %s", job_id, exc)
                continue
            gone.append(job_id)
        return gone

    # ------------------------------------------------------------------ outputs
    def _storage(self) -> AsyncJobStorage:
        if self.storage is None:
            raise ApiError(503, "job outputs storage (S3) is not configured", retry_after=60)
        return self.storage

    def _run_of(self, ref: JobRef, run: int | None) -> str:
        """The folder of run ``run`` of a sweep (``""``: the whole job); 400 for a run the job
        does not have."""
        if run is None:
            return ""
        runs = sweep_size(self.view(ref).get("spec") or {})
        if not 0 <= run < runs:
            allowed = f"0 to {runs - 1}" if runs else "no run: this job is not a sweep"
            raise ApiError(
                400,
                f"job {ref.id} has no run {run}",
                [FieldError("run", f"{run} is not a run of this job", allowed)],
            )
        return run_name(run)

    async def outputs(self, ident: Identity, job_id: str, run: int | None = None) -> dict[str, Any]:
        ref = self.visible(ident, job_id)
        folder = self._run_of(ref, run)
        storage = self._storage()
        try:
            files = await storage.list_outputs(ref.owner, ref.id)
            if folder:
                files = [f for f in files if f.path.startswith(folder + "/")]
        except Exception as exc:  # noqa: BLE001 - S3 down: the caller retries
            raise ApiError(
                503, f"the S3 store is unavailable ({type(exc).__name__})", retry_after=10
            ) from None
        await self._learn_upload(ref)
        upload = self._upload.get(ref.id, "pending")
        return {"items": [f.as_dict() for f in files], "upload": upload}

    async def output_url(self, ident: Identity, job_id: str, path: str) -> tuple[str, int]:
        ref = self.visible(ident, job_id)
        storage = self._storage()
        expires = int(self.policy.s3.presign_expiry_seconds)
        try:
            url = await storage.presigned_get(ref.owner, ref.id, path, expires)
        except ValueError:
            raise ApiError(
                400,
                "not a path inside the job's outputs",
                [FieldError("path", f"{path[:80]!r}", "a path from GET .../outputs")],
            ) from None
        except Exception as exc:  # noqa: BLE001
            raise ApiError(
                503, f"the S3 store is unavailable ({type(exc).__name__})", retry_after=10
            ) from None
        if url is None:
            raise ApiError(404, f"job {job_id} has no output {path[:80]!r}")
        return url, expires

    # ------------------------------------------------------------------ logs
    async def logs(
        self,
        ident: Identity,
        job_id: str,
        *,
        follow: bool,
        tail: int | None,
        rank: int = 0,
        closed: Callable[[], bool] = lambda: False,
        run: int | None = None,
    ) -> AsyncIterator[bytes]:
        """The job's log (``rank``'s, of a multi-node job): streamed from its pod while the pod
        exists (following it when ``follow``), then from the archived ``log.txt`` in S3;
        neither: 503 saying where in the home the log is kept until it is archived."""
        first = self.visible(ident, job_id)
        owner = first.owner
        first_ref = self._ref(job_id)
        nodes = nodes_of(first_ref.job) if first_ref is not None else 1
        if rank >= nodes:
            raise ApiError(
                400,
                f"job {job_id} has no rank {rank}",
                [FieldError("rank", str(rank), f"0 to {nodes - 1}")],
            )
        # a sweep's log is per run: run 0's unless the caller names one (a job is either
        # multi-node or a sweep, never both: rank and run never both narrow the pods)
        if run is None and is_sweep(self.view(first).get("spec")):
            run = 0
        folder = self._run_of(first, run)
        streamed: set[str] = set()
        while not closed():
            ref = self._ref(job_id)
            job = ref.job if ref else None
            pods = ref.pods if ref and not ref.gone else []
            if nodes > 1:
                pods = [p for p in pods if rank_of(p) == rank]
            if folder:
                pods = [p for p in pods if pod_index(p) == run]
            pod = None
            for candidate in sorted(
                pods, key=lambda p: _meta(p).get("creationTimestamp") or "", reverse=True
            ):
                if _meta(candidate).get("name") not in streamed and _started(candidate):
                    pod = candidate
                    break
            if pod is not None:
                name = _meta(pod)["name"]
                query: dict[str, Any] = {"container": CONTAINER}
                if follow:
                    query["follow"] = "true"
                if tail is not None:
                    query["tailLines"] = tail
                try:
                    async for chunk in self.kube.stream(
                        self.kube.pods_path(name) + "/log", query=query
                    ):
                        yield chunk
                        if closed():
                            return
                    streamed.add(name)
                    if not follow:
                        return
                    continue
                except KubeError as exc:
                    if exc.status not in (400, 404):
                        if streamed or not follow:
                            return
                        raise from_kube(exc, "reading the job's log") from None
                    streamed.add(name)
            finished = job is None or is_finished(job)
            live = [
                p
                for p in pods
                if ((p.get("status") or {}).get("phase")) not in ("Succeeded", "Failed")
                and _meta(p).get("name") not in streamed
            ]
            if finished and not live:
                if streamed:
                    return
                data = await self._archived_log(
                    owner, job_id, wait=follow, closed=closed, rank=rank, run=folder
                )
                if data is None and not closed():
                    raise await self._log_not_archived(owner, job_id, rank, folder)
                if data:
                    yield _tail_lines(data, tail)
                return
            if not follow:
                return
            await self.cache.wait_changed(2.0)

    async def _log_not_archived(
        self, owner: str, job_id: str, rank: int = 0, run: str = ""
    ) -> ApiError:
        """Why there is no log to show: the pod is gone and S3 holds no ``log.txt``."""
        ref = self._ref(job_id)
        if ref is not None:
            if NEVER_STARTED_ANNOTATION in (_meta(ref.job).get("annotations") or {}):
                return ApiError(404, f"job {job_id} has no log: it was cancelled before it started")
            await self._learn_upload(ref)
        if self._upload.get(job_id) in ("ok", "failed"):
            return ApiError(404, f"job {job_id} left no log (it never started)")
        where = job_state_dir(job_id, rank) + (f"/{run}" if run else "")
        return ApiError(
            503,
            f"the log of job {job_id} is not archived yet: if the job ran, its log is kept in "
            f"{owner}'s home at ~/{where}/log.txt and is archived with the outputs once "
            "S3 answers",
            retry_after=30,
        )

    async def _archived_log(
        self,
        owner: str,
        job_id: str,
        *,
        wait: bool,
        closed: Callable[[], bool],
        rank: int = 0,
        run: str = "",
    ) -> bytes | None:
        if self.storage is None:
            return None
        for _ in range(30 if wait else 1):
            try:
                data = await self.storage.read_log(owner, job_id, rank=rank, run=run)
            except Exception:  # noqa: BLE001 - S3 trouble: nothing to show now
                data = None
            if data is not None or closed():
                return data
            if wait:
                await asyncio.sleep(1.0)
        return None


def _is_scheduled_run(job: dict[str, Any]) -> bool:
    """A Job the CronJob controller made for a saved definition (its upload Secret is the
    definition's, not ``<job-id>-upload``)."""
    return any(ref.get("kind") == "CronJob" for ref in _meta(job).get("ownerReferences") or [])


def _started(pod: dict[str, Any]) -> bool:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        state = status.get("state") or {}
        if "running" in state or "terminated" in state:
            return True
    return False
