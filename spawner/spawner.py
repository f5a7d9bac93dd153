"""``GPULabSpawner``: KubeSpawner, configured per user from the gpulab policy and catalogue.

What it adds to KubeSpawner (subclassing and configuring; nothing is patched):

* ``profile_list`` is an async callable: the user's profiles, images and GPU sizes
  (:mod:`gpulab.spawner.form`), rendered by gpulab's form template
  (``additional_profile_form_template_paths``), which also shows free GPUs per type and the
  quota left, and disables GPU sizes that cannot run now.
* Never trust the form: each start's request is admitted once by the rules jobs share
  (:mod:`gpulab.hub.workload.admission`, through :mod:`gpulab.spawner.checks`): in
  ``options_from_form`` for a form post (so the spawn page shows the message), else in
  ``load_user_options`` (REST API spawns). The GPU quotas are checked once, in
  ``load_user_options``, counted from the cluster's pods and jobs
  (:mod:`gpulab.spawner.cluster`) plus the reservations in the quota group's ledger, and the
  check reserves the pod's GPUs there in one conditional write
  (:mod:`gpulab.hub.workload.quota_ledger`, shared with the jobs gateway). A refusal is a
  :class:`SpawnRefused` (HTTP 403/400) whose message JupyterHub shows on the spawn page; no
  pod is created.
* A fresh :class:`~gpulab.spawner.overrides.PodPlan` per start (the shared pod parts of
  :mod:`gpulab.hub.workload.pod`). The traits a start may change are reset to their configured
  values in ``clear_state`` (JupyterHub calls it before every start and after every stop), so
  nothing of a previous profile carries over (kubespawner#546, jupyterhub#3592); the plan sets
  the traits KubeSpawner builds the container from, and ``modify_pod_hook`` finishes the pod
  from the same plan, so group overrides cannot widen it.
* Homes are never deleted (``delete_pvc`` is forced off; ``delete_forever`` keeps the claim, or
  snapshots it when the policy says ``on_user_delete: snapshot``); the home claim is built by
  :func:`~gpulab.hub.workload.pod.home_claim` (the home labels), and a start cancels a pending
  deletion of it, or fails at once, naming the snapshot to restore, when the claim is being
  deleted.
* ``progress`` says what the pod's events mean in researchers' words ("waiting for a free A100
  GPU: 2 requests ahead"; the scheduler's text under "details"), and a spawn that waits for
  GPUs longer than the policy's ``wait_for_gpus`` fails with a clear message.
* When Kueue is installed, Kueue is the one arbiter of quotas for servers and jobs alike: the
  pod joins the user's LocalQueue (made on demand by :mod:`gpulab.hub.kueue`) with the
  interactive priority class, Kueue gates it until it admits it, and the quota ledger is not
  used (the policy checks still are). While gated, the progress page shows the server's place
  in its group's queue (:mod:`gpulab.hub.workload.queueing`), bounded by ``wait_for_gpus``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from gpulab.hub.field_errors import FieldError
from gpulab.hub.homes import Homes, HomeUnavailable
from gpulab.hub.kube import KubeClient, KubeError
from gpulab.hub.kueue.detect import KueueStatus, detect_kueue
from gpulab.hub.kueue.keeper import hub_kueue_status
from gpulab.hub.kueue.sync import KueueConflict, ensure_user_queues
from gpulab.hub.names import escape_username
from gpulab.hub.policy import Entitlement, Policy, PolicyFile, format_duration
from gpulab.hub.shared_policy import shared_policy_file
from gpulab.hub.workload.admission import (
    WorkloadRequest,
    quota_applies,
    quota_problems,
    request_problems,
)
from gpulab.hub.workload.holdings import describe_holders
from gpulab.hub.workload.pod import gpu_resource_names, home_claim
from gpulab.hub.workload.queueing import kueue_gated, queue_standing, workload_of
from gpulab.hub.workload.quota_ledger import QuotaLedger
from jupyterhub.utils import url_path_join
from kubespawner import KubeSpawner
from kubespawner.objects import make_pvc
from tornado import web
from traitlets import Bool, Integer, Unicode, default

from .checks import GpuUsage, parse_user_options, render, server_request
from .cluster import ClusterView, cluster_view
from .form import TEMPLATES, QuotaLeft, build_profile_list, offered_images_by_profile
from .form_template import render_profile_form
from .overrides import PodPlan, build_pod_plan, deep_merge, finish_pod
from .picker import remember_recent
from .progress import QueueWait, SpawnContext, explain_event, explain_queue, progress_event
from .quota import waiting_for_gpus

__all__ = ["GPULabSpawner", "SpawnRefused", "hub_state"]

log = logging.getLogger("gpulab.spawner")

QUEUE_TICK_SECONDS = 2.0  # how often the progress page re-reads a queued server's standing

# KubeSpawner traits a start may change (the plan, group overrides); reset to their configured
# values before each start.
MANAGED_TRAITS = (
    "image",
    "cpu_guarantee",
    "cpu_limit",
    "mem_guarantee",
    "mem_limit",
    "extra_resource_limits",
    "extra_resource_guarantees",
    "node_selector",
    "tolerations",
    "volumes",
    "volume_mounts",
    "pod_security_context",
    "container_security_context",
    "uid",
    "gid",
    "fs_gid",
    "privileged",
    "allow_privilege_escalation",
    "automount_service_account_token",
    "service_account",
    "extra_labels",
    "extra_annotations",
    "environment",
    "image_pull_secrets",
    "extra_pod_config",
    "extra_container_config",
    "node_affinity_required",
    "node_affinity_preferred",
)


class SpawnRefused(web.HTTPError):
    """A refused spawn: JupyterHub shows ``jupyterhub_message`` on the spawn page."""

    def __init__(self, problems: list[str], status_code: int = 403) -> None:
        self.problems = list(problems)
        message = "; ".join(self.problems)
        super().__init__(status_code, "%s", message)
        self.jupyterhub_message = f"Cannot start your server: {message}"

    @classmethod
    def of(cls, problems: list[FieldError]) -> SpawnRefused:
        """A refusal in the spawn page's words: 400 for a malformed request, else 403."""
        status = 400 if any(p.code == "invalid" for p in problems) else 403
        return cls([render(p) for p in problems], status)

    def __str__(self) -> str:
        return self.jupyterhub_message


# ----------------------------------------------------------------------------- hub-wide state


@dataclass
class HubState:
    """The policy file and the catalogue, shared by all spawners of the hub process."""

    policy_file: PolicyFile
    catalogue: Any = None
    catalogue_key: Any = None
    started: bool = False
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    kueue: KueueStatus | None = None  # asked once, at the first start

    @property
    def policy(self) -> Policy:
        return self.policy_file.policy

    async def ensure_started(self, reload_interval: float) -> None:
        if not self.started:
            self.started = True
            self.policy_file.start(reload_interval)
        await self._ensure_catalogue()

    async def kueue_status(self, kube: KubeClient) -> KueueStatus:
        """Whether Kueue admits servers: what the hub's Kueue keeper found at start, else
        asked once here (a spawner outside the hub's keeper, e.g. a test's), then kept:
        installing Kueue under a running hub takes a hub restart, as the hub's log says."""
        found = hub_kueue_status()
        if found is not None:
            return found
        if self.kueue is None:
            self.kueue = await detect_kueue(kube)
            log.info("spawner: %s", self.kueue.message)
        return self.kueue

    async def _ensure_catalogue(self) -> None:
        key = self.policy.catalogue
        if self.catalogue is not None and self.catalogue_key == key:
            return
        from gpulab.hub.catalogue import catalogue_from_policy  # noqa: PLC0415

        old = self.catalogue
        self.catalogue = catalogue_from_policy(self.policy)
        self.catalogue_key = key
        await self.catalogue.start()
        if old is not None:
            with contextlib.suppress(Exception):
                await old.stop()


_states: dict[str, HubState] = {}


def hub_state(policy_path: str) -> HubState:
    """The shared state for a policy file (loaded on first use; raises PolicyError)."""
    state = _states.get(policy_path)
    if state is None:
        state = _states[policy_path] = HubState(shared_policy_file(policy_path))
    return state


# KubeSpawner calls its hooks with the spawner as first argument.
def _gpulab_profile_list(spawner: GPULabSpawner) -> Any:
    return spawner.gpulab_profile_list()


def _modify_pod_hook(spawner: GPULabSpawner, pod: Any) -> Any:
    return spawner._finished_pod(pod)


# ----------------------------------------------------------------------------- the spawner


class GPULabSpawner(KubeSpawner):
    """KubeSpawner with gpulab's policy, catalogue, checks and pod plan (module docstring)."""

    policy_path = Unicode(
        os.environ.get("GPULAB_POLICY", ""),
        config=True,
        help="The policy file (default: $GPULAB_POLICY).",
    )
    policy_reload_interval = Integer(
        5, config=True, help="Seconds between checks of the policy file for changes."
    )
    hub_public_url = Unicode(
        "",
        config=True,
        help="""Origin the user's pod reaches the hub's proxy at (e.g. http://proxy-public).
        Empty: JupyterHub.public_url if set, else the proxy's public (bind) URL.""",
    )
    gateway_url = Unicode(
        "", config=True, help="GPULAB_GATEWAY_URL for the pod (default: derived from the hub URL)."
    )
    culler_url = Unicode(
        "", config=True, help="GPULAB_CULLER_URL for the pod (default: derived from the hub URL)."
    )
    cluster_wide = Bool(
        True,
        config=True,
        help="Watch nodes and pods of all namespaces (GPU availability on the spawn page).",
    )
    show_availability = Bool(True, config=True, help="Show free GPUs on the spawn page.")
    start_timeout_margin = Integer(
        180,
        config=True,
        help="Seconds added to the policy's wait_for_gpus for the spawn's start_timeout.",
    )

    _plan: PodPlan | None = None
    # (the options options_from_form returned, the request it admitted): the start that
    # follows a form post uses that very dict as user_options and need not check it again.
    _admitted: tuple[dict[str, Any], WorkloadRequest] | None = None
    # (quota group, pod name) this start reserved GPUs for in the quota ledger.
    _reservation: tuple[str, str] | None = None
    # The LocalQueue this start's pod joined (Kueue admits it); None: gpulab admitted it.
    _local_queue: str | None = None
    # The user's last images, newest first: listed first by the spawn page's image choice.
    # Kept in the spawner's state (the hub's database), across stops and hub restarts.
    _recent_images: tuple[str, ...] = ()

    @default("profile_list")
    def _default_profile_list(self) -> Any:
        return _gpulab_profile_list

    @default("modify_pod_hook")
    def _default_modify_pod_hook(self) -> Any:
        return _modify_pod_hook

    @default("options_from_form")
    def _default_options_from_form(self) -> Any:
        return self._gpulab_options_from_form

    @default("additional_profile_form_template_paths")
    def _default_form_templates(self) -> list[str]:
        return [TEMPLATES]

    @default("delete_pvc")
    def _default_delete_pvc(self) -> bool:
        return False

    @default("storage_pvc_ensure")
    def _default_storage_pvc_ensure(self) -> bool:
        return True

    @default("pvc_name_template")
    def _default_pvc_name_template(self) -> str:
        return "home-{username}"  # replaced by the policy's claim name in each plan

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The configured values of the traits a plan sets (after config and __init__).
        self._configured = {name: copy.deepcopy(getattr(self, name)) for name in MANAGED_TRAITS}
        self._configured_start_timeout = self.start_timeout
        self.delete_pvc = False  # a home is never deleted as a side effect (kubespawner#880)

    # ------------------------------------------------------------------ policy & catalogue
    def _state(self) -> HubState:
        if not self.policy_path:
            raise SpawnRefused(["gpulab is not configured: no policy file"], 500)
        return hub_state(self.policy_path)

    async def _ready_state(self) -> HubState:
        state = self._state()
        await state.ensure_started(self.policy_reload_interval)
        return state

    @property
    def policy(self) -> Policy:
        return self._state().policy

    def entitlement(self, policy: Policy | None = None) -> Entitlement | None:
        policy = policy or self.policy
        groups = [g.name for g in getattr(self.user, "groups", [])]
        return policy.entitlement(groups)

    async def _images(self, state: HubState) -> list[Any]:
        return list(await state.catalogue.images())

    def _user_label(self) -> str:
        return escape_username(self.user.name)

    async def _cluster(self) -> ClusterView:
        return await cluster_view(self.namespace, cluster_wide=self.cluster_wide).ready()

    def _quota_left(self, ent: Entitlement, usage: GpuUsage, *, queued: bool) -> QuotaLeft:
        return QuotaLeft(
            queued=queued,
            user_used=usage.user,
            user_limit=ent.gpu_quota_user,
            group=ent.quota_group,
            group_used=usage.group,
            group_limit=ent.quota_group_limit,
            held_by=describe_holders(usage.holders, usage.counted_for),
        )

    # ------------------------------------------------------------------ the form
    async def gpulab_profile_list(self) -> list[dict[str, Any]]:
        """The user's ``profile_list``, with free GPUs and the quota left for the spawn page."""
        state = await self._ready_state()
        ent = self.entitlement(state.policy)
        if ent is None:
            return []
        images = await self._images(state)
        availability = quota = None
        if ent.may_use_gpus and self.show_availability:
            try:
                view = await self._cluster()
                availability = view.availability(state.policy.gpu_types)
                queued = (await state.kueue_status(KubeClient.of(self.api.api_client))).available
                usage = view.usage(self._user_label(), ent.quota_group)
                quota = self._quota_left(ent, usage, queued=queued)
            except Exception:
                self.log.exception("GPU availability is not available for the spawn page")
        return build_profile_list(
            ent,
            images,
            availability=availability,
            quota=quota,
            recent=self._recent(),
            policy_profiles=state.policy.profiles,
            gpu_labels={n: t.label for n, t in state.policy.gpu_types.items() if t.label},
        )

    def _recent(self) -> list[str]:
        """The user's recent images; the last start's image first (JupyterHub keeps its
        options even where the state is older than this list)."""
        last = (self.user_options or {}).get("image")
        recent = list(self._recent_images)
        return remember_recent(recent, last) if isinstance(last, str) and last else recent

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        if self._recent_images:
            state["gpulab_recent_images"] = list(self._recent_images)
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        recent = (state or {}).get("gpulab_recent_images")
        if isinstance(recent, list):
            self._recent_images = tuple(r for r in recent if isinstance(r, str))

    def _render_options_form(self, profile_list: list[dict[str, Any]]) -> str:
        """KubeSpawner's form rendering with the compiled templates kept
        (:mod:`gpulab.spawner.form_template`). Private override: KubeSpawner has no hook for
        its template environment. ``user_options`` need no check here: the form only
        preselects them, and what is posted is admitted."""
        if self.profile_form_template:
            return super()._render_options_form(profile_list)
        return render_profile_form(
            self.additional_profile_form_template_paths,
            self._get_initialized_profile_list(profile_list),
            self.user_options,
        )

    async def _gpulab_options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, Any]:
        """KubeSpawner's parsing, then admission, so a tampered form is refused on the spawn
        page before anything starts."""
        options = self._options_from_form(formdata)
        self._admitted = (options, await self._check(options))
        return options

    # ------------------------------------------------------------------ checks
    def _other_named_servers(self) -> int:
        orm_spawners = getattr(getattr(self.user, "orm_user", None), "orm_spawners", None) or {}
        return sum(1 for name in orm_spawners if name and name != self.name)

    async def _check(self, options: dict[str, Any]) -> WorkloadRequest:
        """Admit the request in ``options`` (not the quota: that is checked as it is reserved)."""
        state = await self._ready_state()
        ent = self.entitlement(state.policy)
        images = await self._images(state)
        server, problems = server_request(
            parse_user_options(options),
            ent,
            offered_images=offered_images_by_profile(ent, images) if ent else {},
            catalogue={i.reference for i in images},
            server_name=self.name or "",
            named_servers=self._other_named_servers(),
        )
        if server is not None:
            problems = request_problems(server)
        if problems:
            raise SpawnRefused.of(problems)
        assert server is not None
        return server

    async def _admitted_request(self, options: dict[str, Any]) -> WorkloadRequest:
        """The request options_from_form admitted, if these are its options and the user's
        entitlement has not changed since (a policy reload); else admit them now."""
        admitted, self._admitted = self._admitted, None
        if admitted is not None and admitted[0] is self.user_options:
            _, server = admitted
            if self.entitlement() == server.entitlement:
                return server
        return await self._check(options)

    # ------------------------------------------------------------------ start
    def clear_state(self) -> None:
        """JupyterHub calls this before each start and after each stop: forget the last plan
        and put every trait a plan sets back to its configured value."""
        super().clear_state()
        self._plan = None
        self._local_queue = None
        for name, value in getattr(self, "_configured", {}).items():
            setattr(self, name, copy.deepcopy(value))

    def start(self) -> Any:
        try:
            ent = self.entitlement()
        except Exception:
            ent = None
        if ent is not None and ent.may_use_gpus:
            self.start_timeout = max(
                self._configured_start_timeout,
                ent.wait_for_gpus_seconds + self.start_timeout_margin,
            )
        return super().start()

    async def load_user_options(self) -> None:
        """Admit the request unless the form post did (the form may be tampered with, or the
        request come from the REST API), check and reserve the GPU quotas (the quota ledger),
        then apply a fresh plan. KubeSpawner's own
        profile handling is not used: gpulab's profile_list carries no overrides, and the plan
        is the only source of what the pod gets."""
        server = await self._admitted_request(dict(self.user_options or {}))
        ent, gpus = server.entitlement, server.gpus
        state = await self._ready_state()
        self._local_queue = await self._join_kueue(state.policy, ent)
        if self._local_queue is None and quota_applies(server):  # GPUs, or a CPU/memory quota
            await self._reserve_quota(server)
        profile, image = server.profile, server.image
        assert profile is not None and image is not None
        self.user_options = {"profile": profile.name, "image": image, "gpus": str(gpus)}
        self._recent_images = tuple(remember_recent(self._recent_images, image))
        plan = build_pod_plan(
            policy=state.policy,
            entitlement=ent,
            profile=profile,
            image=image,
            gpus=gpus,
            username=self.user.name,
            gateway_url=self._service_url("gateway_url", "jobs-gateway"),
            culler_url=self._service_url("culler_url", "culler"),
            base_limits=self.extra_resource_limits,
            base_guarantees=self.extra_resource_guarantees,
            local_queue=self._local_queue,
        )
        self._apply_plan(plan)
        await self._cancel_home_deletion(state.policy)

    def _homes(self, policy: Policy) -> Homes:
        return Homes(self.api.api_client, self.namespace, policy)

    async def _cancel_home_deletion(self, policy: Policy) -> None:
        """A user who starts a server again keeps their home: a pending deletion (the mark
        :meth:`delete_forever` left) is cancelled. One read of the claim; a patch only when
        it carries the mark. A home being deleted fails the start at once (the pod would stay
        Pending on the volume), naming the snapshot to restore. Any other failure is logged;
        the start goes on."""
        try:
            if await self._homes(policy).cancel_deletion(self.user.name):
                self.log.info(
                    "home of %s: pending deletion cancelled (server start)", self._log_name
                )
        except HomeUnavailable as exc:
            self.log.warning("home of %s: %s", self._log_name, exc)
            raise SpawnRefused([str(exc)], 409) from None
        except Exception:
            self.log.exception("home of %s: could not check for a pending deletion", self._log_name)

    async def _join_kueue(self, policy: Policy, ent: Entitlement) -> str | None:
        """The user's LocalQueue when Kueue is installed (made on first use, with their
        ClusterQueue), else None: gpulab admits the server with its own quota check."""
        kube = KubeClient.of(self.api.api_client)
        if not (await self._state().kueue_status(kube)).available:
            return None
        try:
            return await ensure_user_queues(
                kube, policy, self.user.name, ent.quota_group, namespace=self.namespace
            )
        except KubeError as exc:
            self.log.warning("cannot queue %s with Kueue: %s", self._log_name, exc)
            raise SpawnRefused(
                [f"cannot join your queue right now ({exc.reason}); try again"], 503
            ) from None
        except (KueueConflict, KeyError) as exc:  # the policy or the cluster need an admin
            self.log.error("cannot queue %s with Kueue: %s", self._log_name, exc)
            raise SpawnRefused(
                ["your queue cannot be made (a Kueue object is in the way); tell an admin"], 500
            ) from None

    def _quota_ledger(self) -> QuotaLedger:
        return QuotaLedger(KubeClient.of(self.api.api_client), self.namespace)

    async def _reserve_quota(self, server: WorkloadRequest) -> None:
        """Check the GPU quotas and reserve this pod's GPUs in the quota group's ledger, in one
        conditional write shared with the jobs gateway and every other spawner: counted until
        the pod is in the cluster view (or released if the start fails)."""
        view = await self._cluster_or_refuse()
        group, user = server.entitlement.quota_group, self._user_label()
        try:
            problems = await self._quota_ledger().reserve(
                group,
                "pod",
                self.pod_name,
                user=user,
                gpus=server.gpus,
                demand=server.requested,
                counted=lambda: view.usage(user, group),
                seen=view.holds,
                check=lambda usage: quota_problems(server, usage),
            )
        except KubeError as exc:
            self.log.warning("cannot reserve GPU quota for %s: %s", self._log_name, exc)
            raise SpawnRefused(
                [f"cannot check your GPU quota right now ({exc.reason}); try again"], 503
            ) from None
        if problems:
            raise SpawnRefused.of(problems)
        self._reservation = (group, self.pod_name)

    async def _release_quota(self) -> None:
        """Free this start's reservation (the pod was not made, or is stopped): else it would
        hold the quota until it expires."""
        reservation, self._reservation = self._reservation, None
        if reservation is None:
            return
        group, pod_name = reservation
        try:
            await self._quota_ledger().release(group, "pod", pod_name)
        except KubeError as exc:
            self.log.warning("quota reservation of %s not released (%s); it expires", pod_name, exc)

    async def _cluster_or_refuse(self) -> ClusterView:
        try:
            return await self._cluster()
        except Exception as exc:
            self.log.exception("cannot read the cluster to check GPU quotas")
            raise SpawnRefused(
                [f"cannot check your GPU quota right now ({type(exc).__name__}); try again"], 503
            ) from None

    def _service_url(self, trait: str, service: str) -> str | None:
        configured = getattr(self, trait)
        if configured:
            return configured
        base_url = "/"
        settings = getattr(self.user, "settings", None) or {}
        base_url = settings.get("base_url", "/")
        if self.hub_public_url:
            return url_path_join(self.hub_public_url, base_url, f"services/{service}/")
        public_hub = getattr(self, "public_hub_url", "")
        if public_hub:
            return url_path_join(public_hub.split("/hub/")[0] + "/", f"services/{service}/")
        proxy = settings.get("proxy")
        public = getattr(proxy, "public_url", "") if proxy is not None else ""
        if public:
            return url_path_join(public, f"services/{service}/")
        return None

    def _apply_plan(self, plan: PodPlan) -> None:
        """Set the traits KubeSpawner builds the container from; the environment merges with the
        configured one (plus this start's group overrides), the plan's names winning."""
        traits = plan.spawner_traits()
        traits["environment"] = deep_merge(self.environment or {}, traits["environment"])
        for name, value in traits.items():
            setattr(self, name, value)
        self._plan = plan

    def _finished_pod(self, pod: Any) -> Any:
        """``modify_pod_hook``: KubeSpawner's pod, finished from this start's plan (home,
        datasets, placement, security, labels; resources capped), whatever group overrides or
        ``extra_pod_config``/``extra_container_config`` asked for."""
        plan = self._plan
        if plan is None:
            raise SpawnRefused(["internal error: no pod plan (load_user_options did not run)"], 500)
        for note in finish_pod(plan, pod, self.policy):
            self.log.warning("pod %s: %s (capped to the policy)", self.pod_name, note)
        return pod

    def get_pvc_manifest(self) -> Any:
        """The home claim from :func:`gpulab.hub.workload.pod.home_claim`, as the gateway makes
        it. Overridden because KubeSpawner writes its own component and common labels over
        ``storage_extra_labels``, so no trait can give the claim the home labels."""
        claim = home_claim(self.policy, self.user.name, self.namespace)
        meta, spec = claim["metadata"], claim["spec"]
        return make_pvc(
            name=meta["name"],
            storage_class=spec.get("storageClassName"),
            access_modes=spec["accessModes"],
            selector=None,
            storage=spec["resources"]["requests"]["storage"],
            labels=meta["labels"],
        )

    # Private override: KubeSpawner has no hook to fail a start that waits (for GPUs) too long.
    async def _start(self) -> Any:
        start = asyncio.ensure_future(super()._start())
        watchdog = asyncio.ensure_future(self._gpu_wait_watchdog())
        try:
            done, _ = await asyncio.wait({start, watchdog}, return_when=asyncio.FIRST_COMPLETED)
            if start not in done:
                start.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await start
                return watchdog.result()  # raises the watchdog's SpawnRefused
            return start.result()
        except BaseException:
            await asyncio.shield(self._release_quota())  # no pod holds the reserved GPUs
            raise
        finally:
            watchdog.cancel()

    async def stop(self, now: bool = False) -> Any:
        """KubeSpawner's stop, then this start's quota reservation is freed at once (the pod is
        gone or terminating, and counted from the cluster view while it terminates)."""
        try:
            return await super().stop(now=now)
        finally:
            await self._release_quota()

    # ------------------------------------------------------------------ waiting for GPUs
    def _scheduling_problem(self) -> str | None:
        """The scheduler's reason if our pod is Pending and unschedulable, else None."""
        reflector = self.pod_reflector
        pod = reflector.pods.get(f"{self.namespace}/{self.pod_name}") if reflector else None
        if not pod or (pod.get("status") or {}).get("phase") != "Pending":
            return None
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if (
                cond.get("type") == "PodScheduled"
                and cond.get("status") == "False"
                and cond.get("reason") == "Unschedulable"
            ):
                return cond.get("message") or "unschedulable"
        if (pod.get("spec") or {}).get("nodeName"):
            return None
        for event in reversed(self.events):
            if event.get("reason") == "FailedScheduling":
                return event.get("message") or "unschedulable"
            if event.get("reason") == "Scheduled":
                return None
        return None

    def _gated(self) -> bool:
        """This start's pod waits for Kueue's admission (its scheduling gate is on)."""
        if self._local_queue is None:
            return False
        reflector = self.pod_reflector
        pod = reflector.pods.get(f"{self.namespace}/{self.pod_name}") if reflector else None
        return bool(pod) and kueue_gated(pod)

    async def _gpu_wait_watchdog(self) -> None:
        """Fail the spawn once it has waited for GPUs (or in Kueue's queue) longer than the
        policy allows."""
        since: float | None = None
        while True:
            await asyncio.sleep(1)
            queued = self._gated()
            gpu = self._plan.parts.gpu if self._plan else None
            if not queued and (gpu is None or gpu.gpus == 0):
                continue
            problem = "queued for admission by Kueue" if queued else self._scheduling_problem()
            if problem is None:
                since = None
                continue
            since = since or time.monotonic()
            ent = self.entitlement()
            wait = ent.wait_for_gpus_seconds if ent else 0
            if time.monotonic() - since >= wait:
                # The scheduler's own text is for admins (the log, and "details" on the
                # progress page while waiting); the researcher gets what to do.
                self.log.info("%s waited %ss for GPUs: %s", self._log_name, wait, problem)
                if queued:
                    raise SpawnRefused([await self._queue_timeout(wait)], 503)
                assert gpu is not None
                raise SpawnRefused(
                    [
                        f"no node could take {gpu.gpus} {gpu.gpu_type} GPU"
                        f"{'s' if gpu.gpus != 1 else ''} within {format_duration(wait)} "
                        "(your groups' wait_for_gpus): the GPUs stayed in use. "
                        "Try fewer GPUs, or later"
                    ],
                    503,
                )

    async def _queue_timeout(self, wait: int) -> str:
        """Why a server Kueue did not admit in time failed, in researchers' words."""
        queue = await self._queue_wait()
        where = f" in the queue of {queue.group}" if queue else " in its queue"
        standing = ""
        if queue is not None:
            of = f" of {queue.quota}" if queue.quota else ""
            standing = f": {queue.ahead} ahead, {queue.gpus_in_use}{of} GPUs in use"
        return (
            f"your server waited {format_duration(wait)}{where} without being admitted "
            f"(your groups' wait_for_gpus){standing}. Try fewer GPUs, or later"
        )

    async def _queue_wait(self) -> QueueWait | None:
        """Where this start's gated pod stands in its quota group's queue (None: not queued).
        Read from the cluster view's watch caches: no API call."""
        ent = self.entitlement()
        if not self._gated() or ent is None:
            return None
        group, quota = ent.quota_group, ent.quota_group_limit or 0
        try:
            view = await cluster_view(self.namespace, cluster_wide=self.cluster_wide).queue_ready()
        except Exception:
            self.log.exception("cannot read Kueue's Workloads for %s", self._log_name)
            return QueueWait(group, 0, 0, quota, "")
        workloads = list(view.workloads.objects.values()) if view.workloads else []
        mine = workload_of(workloads, "Pod", self.namespace, self.pod_name)
        if mine is None:  # Kueue has not made the Workload yet
            return QueueWait(group, 0, 0, quota, "")
        standing = queue_standing(
            mine, workloads, view.group_of_workload, gpu_resource_names(self.policy)
        )
        return QueueWait(
            group, standing.ahead, standing.group_gpus_admitted, quota, standing.reason
        )

    async def _spawn_context(self) -> SpawnContext:
        """This start's GPUs and the spawns of their type waiting ahead of it (from the
        cluster view's watch cache: no API call)."""
        gpu = self._plan.parts.gpu if self._plan else None
        if gpu is None or not gpu.gpus or gpu.gpu_type is None:
            return SpawnContext()
        ent = self.entitlement()
        ahead = 0
        reflector = self.pod_reflector
        pod = reflector.pods.get(f"{self.namespace}/{self.pod_name}") if reflector else None
        created = ((pod or {}).get("metadata") or {}).get("creationTimestamp")
        try:
            view = await self._cluster()
            pods = list(view.pods.objects.values()) if view.pods else []
            ahead = waiting_for_gpus(pods, gpu.gpu_type, before=created, exclude=self.pod_name)
        except Exception:
            self.log.exception("cannot count the spawns waiting for %s GPUs", gpu.gpu_type)
        return SpawnContext(
            gpus=gpu.gpus,
            gpu_type=gpu.gpu_type,
            gpu_resource=gpu.resource,
            ahead=ahead,
            wait=format_duration(ent.wait_for_gpus_seconds) if ent else "",
        )

    async def progress(self) -> Any:
        """KubeSpawner's event stream in researchers' words (:mod:`gpulab.spawner.progress`),
        the raw event text under "details"; while Kueue holds the pod, its place in the queue
        (a gated pod has no scheduler events), said again whenever it changes."""
        yield {"progress": 2, "message": "checking your request against the gpulab policy"}
        events = super().progress()
        step: asyncio.Future[Any] | None = None
        said, percent = "", 2
        try:
            while True:
                step = step or asyncio.ensure_future(anext(events))
                done, _ = await asyncio.wait({step}, timeout=QUEUE_TICK_SECONDS)
                if step in done:
                    try:
                        event = step.result()
                    except StopAsyncIteration:
                        return
                    step = None
                    percent = event.get("progress", percent)
                    raw = event.get("raw_event")
                    if raw:
                        explained = explain_event(raw, await self._spawn_context())
                        if explained is None:
                            continue
                        event = progress_event(event, explained)
                    yield event
                    continue
                queue = await self._queue_wait()
                if queue is not None:
                    explained = explain_queue(queue, await self._spawn_context())
                    if explained.message != said:
                        said = explained.message
                        yield progress_event({"progress": percent}, explained)
        finally:
            if step is not None:
                # The pending read of KubeSpawner's stream must have ended before the stream
                # is closed: closing a generator still running raises, and that error would end
                # JupyterHub's progress stream before its final "failed" event.
                step.cancel()
                await asyncio.wait({step})
            await events.aclose()

    # ------------------------------------------------------------------ homes are kept
    async def delete_forever(self) -> None:
        """Called when a user (or a named server) is deleted: never delete the home. The policy's
        ``on_user_delete`` decides, through :meth:`gpulab.hub.homes.Homes.on_user_deleted`:
        ``keep`` leaves the claim alone; ``snapshot`` takes a VolumeSnapshot and marks the claim
        for deletion after a grace period (``gpulab admin home sweep`` deletes it then, and only
        once the snapshot is ready). Errors are logged; the home is kept either way."""
        if self.name:
            self.log.info("named server %s deleted; the home is kept", self._log_name)
            return
        try:
            policy = self.policy
        except Exception:
            self.log.exception("delete_forever: policy unavailable; keeping every claim")
            return
        try:
            result = await self._homes(policy).on_user_deleted(self.user.name)
        except Exception:
            self.log.exception("user %s deleted; home handling failed, home kept", self.user.name)
            return
        self.log.info(
            "user %s deleted; home %s: %s%s",
            self.user.name,
            result.claim,
            result.action,
            f" (snapshot {result.snapshot})" if result.snapshot else "",
        )
