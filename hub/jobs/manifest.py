"""Pure builders for a job's Kubernetes objects: the ``batch/v1`` Job and its upload Secret.

No I/O: the gateway validates the spec (:mod:`.spec`, :mod:`.validate`), picks the image,
makes the upload credential (:meth:`gpulab.hub.jobs.storage.JobStorage.upload_credential`),
renders both objects here, creates the Secret, then the Job, then sets the Job as the
Secret's owner (:func:`with_owner`) so that the Secret goes when the Job goes.

The Job's container runs ``gpulab-job-runner`` (exec form, no arguments); the runner reads the
normalised spec from ``$GPULAB_JOB_SPEC`` and the upload credential from the Secret mounted
at ``/var/run/gpulab/upload``. The pod has no service-account token; what it shares with the
owner's notebook server (home, datasets read-only, ``/dev/shm``, GPU placement, security
contexts, pull secrets, labels) comes from :func:`gpulab.hub.workload.pod.pod_parts`.

A multi-node job (``nodes: N``) is an Indexed Job (completions = parallelism = N, one pod per
rank, each with ``gpus_per_node`` GPUs) plus a headless Service (:func:`render_rank_service`)
named in the pods' ``subdomain``, through which the ranks find rank 0 by name
(``MASTER_ADDR``). ``backoffLimitPerIndex: 0`` with ``maxFailedIndexes: 0``: the first rank
that fails fails the whole Job (``status.failedIndexes`` names it) and its other pods stop.
Under Kueue the Job's one pod set counts N pods: admitted all together or not at all.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from gpulab.wire.runner import (
    CREDENTIAL_FILE,
    ENV_CULLER_URL,
    REPORT_TOKEN_FILE,
    RUNNER_COMMAND,
    UPLOAD_MOUNT,
    UPLOAD_ONLY_COMMAND,
)

from ..policy import Entitlement, Policy, ProfilePolicy
from ..workload.labels import (
    GPUS_LABEL,
    GROUP_LABEL,
    IDEMPOTENCY_ANNOTATION,
    JOB_COMPLETION_INDEX_KEY,
    JOB_COMPONENT,
    JOB_ID_LABEL,
    JOB_UPLOAD_COMPONENT,
    KUEUE_PRIORITY_LABEL,
    KUEUE_QUEUE_LABEL,
    NODES_LABEL,
    OWNER_ANNOTATION,
    REPORT_TOKEN_HASH_ANNOTATION,
    SPEC_ANNOTATION,
    SUBMIT_KEY_LABEL,
    SWEEP_LABEL,
    UPLOAD_FOR_LABEL,
    USER_LABEL,
    base_labels,
)
from ..workload.pod import HOME_VOLUME, pod_parts, workload_labels
from .ids import submit_key
from .spec import JobSpec
from .validate import effective_gpu_type, effective_runtime, job_profile

__all__ = [
    "CONTAINER_NAME",
    "JobQueue",
    "JobReport",
    "CREDENTIAL_FILE",
    "RUNNER_COMMAND",
    "UPLOAD_MOUNT",
    "job_labels",
    "k8s_literal",
    "render_job",
    "render_rank_service",
    "rank_service_name",
    "render_upload_job",
    "render_upload_secret",
    "upload_job_name",
    "upload_secret_name",
    "with_owner",
]

CONTAINER_NAME = "job"
MASTER_PORT = 29500  # torch.distributed's customary rendezvous port, on rank 0
TERMINATION_GRACE_SECONDS = 120  # the runner forwards SIGTERM, then uploads what there is


@dataclass(frozen=True)
class JobQueue:
    """Where Kueue queues the job: its LocalQueue and WorkloadPriorityClass."""

    local_queue: str
    priority_class: str


def k8s_literal(value: str) -> str:
    """Escape ``$`` so that Kubernetes' ``$(VAR)`` expansion of env values leaves ``value``
    exactly as written (``$$`` -> ``$``)."""
    return value.replace("$", "$$")


def upload_secret_name(job_id: str) -> str:
    """The upload Secret's name for a job (``<job-id>-upload``)."""
    return f"{job_id}-upload"


def rank_service_name(job_id: str) -> str:
    """A multi-node job's headless Service: the job id (a Service name must start with a
    letter, a job id may start with a digit: then ``job-<id>``)."""
    return job_id if job_id[:1].isalpha() else f"job-{job_id}"


def master_addr(job_id: str) -> str:
    """Rank 0's name inside the job's pods: ``<job>-0.<service>`` (its pod's hostname, under
    the headless Service: cluster DNS, or kubesim's hosts file, answers it)."""
    return f"{job_id}-0.{rank_service_name(job_id)}"


def master_port(job_id: str) -> int:
    """Rank 0's rendezvous port: 29500 and up, one per job. On a cluster each pod has its
    own network namespace and 29500 would do; kubesim's pods share the host's, so two jobs'
    rank 0 must not both listen on one port."""
    digest = hashlib.sha256(job_id.encode()).digest()
    return MASTER_PORT + int.from_bytes(digest[:2], "big") % 2000


def _rank_env(spec: JobSpec, job_id: str) -> list[dict[str, Any]]:
    """What ``torchrun`` and ``torch.distributed`` read, for every rank: the rank is the
    pod's completion index, read through the downward API."""
    index = {"fieldRef": {"fieldPath": f"metadata.annotations['{JOB_COMPLETION_INDEX_KEY}']"}}
    fixed = {
        "MASTER_ADDR": master_addr(job_id),
        "MASTER_PORT": str(master_port(job_id)),
        "WORLD_SIZE": str(spec.nodes),
        "GPULAB_NODES": str(spec.nodes),
        # processes per node: one per GPU (torchrun --nproc-per-node), one without GPUs
        "LOCAL_WORLD_SIZE": str(max(1, spec.node_gpus)),
    }
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in fixed.items()]
    env += [{"name": k, "valueFrom": index} for k in ("NODE_RANK", "RANK", "GPULAB_RANK")]
    return env


def render_rank_service(job: dict[str, Any]) -> dict[str, Any]:
    """The headless Service of a multi-node ``job`` (the Job as the API returned it: the
    Service is owned by it and goes with it). It selects the job's pods and publishes them
    before they are ready, as the ranks must reach each other to become so."""
    meta = job.get("metadata") or {}
    if not meta.get("uid") or not meta.get("name"):
        raise ValueError("the Job has no metadata.uid/name yet (use the object the API returned)")
    job_id = str(meta["name"])
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k.startswith("app.kubernetes")}
    labels[JOB_ID_LABEL] = job_id
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": rank_service_name(job_id),
            "namespace": meta.get("namespace"),
            "labels": labels,
            "annotations": {
                OWNER_ANNOTATION: (meta.get("annotations") or {}).get(OWNER_ANNOTATION, "")
            },
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": job_id,
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "spec": {
            "clusterIP": "None",
            "selector": {JOB_ID_LABEL: job_id},
            "publishNotReadyAddresses": True,
            "ports": [{"name": "rendezvous", "port": master_port(job_id), "protocol": "TCP"}],
        },
    }


def upload_job_name(job_id: str) -> str:
    """The upload Job of a job and its own Secret (not the job's ``<id>-upload`` Secret):
    at most 56 characters for a job id."""
    return f"{job_id}-reupload"


def job_labels(
    *, owner: str, job_id: str, group: str, gpus: int, gpu_type: str | None
) -> dict[str, str]:
    labels = workload_labels(
        JOB_COMPONENT, username=owner, group=group, gpus=gpus, gpu_type=gpu_type
    )
    return {**labels, JOB_ID_LABEL: job_id}


def _cpu_text(value: float) -> str:
    return f"{round(value * 1000)}m"


def _resources(spec: JobSpec, profile: ProfilePolicy | None, gpu: dict[str, str]) -> dict:
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if spec.cpu is not None:
        requests["cpu"] = limits["cpu"] = spec.cpu
    elif profile is not None:
        if profile.cpu.guarantee is not None:
            requests["cpu"] = _cpu_text(profile.cpu.guarantee)
        if profile.cpu.limit is not None:
            limits["cpu"] = _cpu_text(profile.cpu.limit)
    if spec.memory is not None:
        requests["memory"] = limits["memory"] = spec.memory
    elif profile is not None:
        if profile.memory.guarantee is not None:
            requests["memory"] = profile.memory.guarantee
        if profile.memory.limit is not None:
            limits["memory"] = profile.memory.limit
    limits.update(gpu)
    requests.update(gpu)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _runner_spec(spec: JobSpec) -> str:
    """What the runner needs, as compact JSON (env is in the container already)."""
    data = spec.to_json()
    data.pop("env", None)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def spec_annotation(spec: JobSpec) -> str:
    """The submitted (normalised) spec as JSON: what ``resubmit`` and the API show."""
    return json.dumps(spec.to_json(), separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _shape(spec: JobSpec) -> dict[str, Any]:
    """How many pods the Job runs and how failures count. One run: one completion,
    ``retries`` retries. A sweep: an Indexed Job, one index per parameter set
    (``$JOB_COMPLETION_INDEX`` tells the runner which), at most ``parallelism`` at once, each
    index retried ``retries`` times on its own (``backoffLimitPerIndex``) so that a failed run
    stops no other; the Job fails at the end if any index failed. ``backoffLimit`` is then a
    bound no sweep reaches (every index failing every retry), never the reason it stops.
    Multi-node: an Indexed Job of ``nodes`` ranks all running at once; one rank failing fails
    the job (the spec refuses retries there)."""
    if spec.multi_node:
        return {
            "completionMode": "Indexed",
            "completions": spec.nodes,
            "parallelism": spec.nodes,
            "backoffLimitPerIndex": 0,
            "maxFailedIndexes": 0,
        }
    runs = len(spec.runs)
    if not runs:
        return {"backoffLimit": spec.retries, "completions": 1, "parallelism": 1}
    return {
        "completionMode": "Indexed",
        "completions": runs,
        "parallelism": spec.parallelism,
        "backoffLimitPerIndex": spec.retries,
        "backoffLimit": runs * (spec.retries + 1),
    }


def render_job(
    spec: JobSpec,
    *,
    owner: str,
    job_id: str,
    entitlement: Entitlement,
    policy: Policy,
    image: str,
    namespace: str,
    upload_secret_name: str,
    gateway_url: str | None = None,
    idempotency_key: str | None = None,
    queue: JobQueue | None = None,
    report: JobReport | None = None,
    extra_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The ``batch/v1`` Job for ``spec`` run by ``owner`` (the raw hub username).

    ``extra_labels`` go on the Job only (e.g. the definition a run-now job was made from).
    With ``report`` (a GPU job, and the gateway knows the culler), the runner reports its GPUs'
    utilisation to the culler, proving who it is with the token whose hash the pod carries.

    With ``queue`` (Kueue runs), the Job is made suspended with Kueue's queue-name and
    priority-class labels: Kueue admits it when the quota allows and un-suspends it.

    The spec must have been admitted (:func:`gpulab.hub.workload.admission.admit`, through
    :mod:`gpulab.hub.jobs.validate`): this builder trusts it; with GPUs and no resolvable type
    it raises ``ValueError``.
    ``image`` is the resolved image (the spec's or the server default)."""
    ent = entitlement
    gpu_type = effective_gpu_type(spec, ent)
    if spec.total_gpus > 0 and (gpu_type is None or gpu_type not in policy.gpu_types):
        raise ValueError("a GPU job needs a GPU type from the policy (validate the spec first)")
    profile = job_profile(ent, gpu_type)
    parts = pod_parts(
        policy=policy,
        username=owner,
        group=ent.quota_group,
        component=JOB_COMPONENT,
        profile=profile,
        gpus=spec.node_gpus,
        gpu_type=gpu_type,
        shm=spec.shm_size,
        datasets=spec.datasets,
    )
    home_path = parts.home.mount_path

    labels = {**parts.labels, JOB_ID_LABEL: job_id}
    if spec.multi_node:  # the job holds every rank's GPUs, counted once (holdings.py)
        labels.update({GPUS_LABEL: str(spec.total_gpus), NODES_LABEL: str(spec.nodes)})
    if spec.sweep is not None:  # each run holds its own GPUs (holdings.py)
        labels[SWEEP_LABEL] = "true"
    job_labels_ = dict(labels)
    annotations = {SPEC_ANNOTATION: spec_annotation(spec), OWNER_ANNOTATION: owner}
    if idempotency_key is not None:
        job_labels_[SUBMIT_KEY_LABEL] = submit_key(owner, idempotency_key)
        annotations[IDEMPOTENCY_ANNOTATION] = idempotency_key
    job_labels_.update(extra_labels or {})
    if queue is not None:
        job_labels_[KUEUE_QUEUE_LABEL] = queue.local_queue
        job_labels_[KUEUE_PRIORITY_LABEL] = queue.priority_class

    # env: the user's first (values literal), then gpulab's (names cannot collide: the spec
    # refuses GPULAB_ and KUBERNETES_ names)
    env: list[dict[str, Any]] = [{"name": k, "value": k8s_literal(v)} for k, v in spec.env.items()]
    ours = {
        "GPULAB_JOB_ID": job_id,
        "GPULAB_JOB_SPEC": _runner_spec(spec),
        "GPULAB_HOME": home_path,
        "GPULAB_UPLOAD_DIR": UPLOAD_MOUNT,
        "GPULAB_IMAGE": image,
        "GPULAB_GPUS": str(spec.node_gpus),
        "PYTHONUNBUFFERED": "1",
    }
    if gpu_type:
        ours["GPULAB_GPU_TYPE"] = gpu_type
    if gateway_url:
        ours["GPULAB_GATEWAY_URL"] = gateway_url
    pod_annotations = {OWNER_ANNOTATION: owner}
    if report is not None:
        ours[ENV_CULLER_URL] = report.culler_url
        pod_annotations[REPORT_TOKEN_HASH_ANNOTATION] = report.token_sha256
    if "HOME" not in spec.env:
        ours["HOME"] = home_path
    if "PYTHONUNBUFFERED" in spec.env:
        del ours["PYTHONUNBUFFERED"]
    env.extend({"name": k, "value": k8s_literal(v)} for k, v in ours.items())
    if spec.multi_node:
        env.extend(_rank_env(spec, job_id))

    upload = {"name": "upload", "mountPath": UPLOAD_MOUNT, "readOnly": True}
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(RUNNER_COMMAND),
        "workingDir": home_path,
        "env": env,
        "volumeMounts": [*parts.volume_mounts, upload],
        "securityContext": parts.container_security_context,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    resources = _resources(spec, profile, parts.gpu.resources)
    if resources:
        container["resources"] = resources

    secret = {"secretName": upload_secret_name, "defaultMode": 0o440, "optional": False}
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "securityContext": parts.pod_security_context,
        "containers": [container],
        "volumes": [*parts.volumes, {"name": "upload", "secret": secret}],
    }
    if parts.gpu.node_selector:
        pod_spec["nodeSelector"] = parts.gpu.node_selector
    if parts.gpu.tolerations:
        pod_spec["tolerations"] = parts.gpu.tolerations
    if parts.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in parts.image_pull_secrets]

    job_spec: dict[str, Any] = {"suspend": True} if queue is not None else {}
    if spec.multi_node:
        pod_spec["subdomain"] = rank_service_name(job_id)
    job_spec.update(_shape(spec))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_id,
            "namespace": namespace,
            "labels": job_labels_,
            "annotations": annotations,
        },
        "spec": {
            **job_spec,
            "activeDeadlineSeconds": effective_runtime(spec, ent),
            "ttlSecondsAfterFinished": ent.job_ttl_seconds,
            "template": {
                "metadata": {"labels": dict(labels), "annotations": pod_annotations},
                "spec": pod_spec,
            },
        },
    }


@dataclass(frozen=True)
class JobReport:
    """How a GPU job's runner reports its GPUs: to ``culler_url`` with a token whose SHA-256
    the pod carries (the token goes in the upload Secret: :func:`render_upload_secret`)."""

    culler_url: str
    token: str = field(repr=False)

    @classmethod
    def new(cls, culler_url: str) -> JobReport:
        return cls(culler_url, secrets.token_urlsafe(32))

    @property
    def token_sha256(self) -> str:
        return hashlib.sha256(self.token.encode()).hexdigest()


def render_upload_secret(
    *,
    owner: str,
    job_id: str,
    namespace: str,
    name: str,
    credential: dict[str, Any],
    group: str,
    gpus: int = 0,
    report_token: str | None = None,
) -> dict[str, Any]:
    """The Secret holding the job's upload credential (``credential.json``, as returned by
    ``JobStorage.upload_credential``); mounted read-only in the job's pod. It holds presigned
    POST policies for the job's S3 prefix only, never an S3 key."""
    labels = job_labels(owner=owner, job_id=job_id, group=group, gpus=gpus, gpu_type=None)
    payload = json.dumps(credential, separators=(",", ":"), sort_keys=True).encode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {OWNER_ANNOTATION: owner},
        },
        "data": {
            CREDENTIAL_FILE: base64.b64encode(payload).decode("ascii"),
            **(
                {REPORT_TOKEN_FILE: base64.b64encode(report_token.encode()).decode("ascii")}
                if report_token
                else {}
            ),
        },
    }


def with_owner(secret: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``secret`` owned by the created ``job`` (it needs ``metadata.uid``), so that
    Kubernetes deletes the Secret with the Job. Patch or replace the Secret with it."""
    meta = job.get("metadata") or {}
    if not meta.get("uid") or not meta.get("name"):
        raise ValueError("the Job has no metadata.uid/name yet (use the object the API returned)")
    out = copy.deepcopy(secret)
    out.setdefault("metadata", {})["ownerReferences"] = [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": meta["name"],
            "uid": meta["uid"],
            "controller": True,
            "blockOwnerDeletion": False,
        }
    ]
    return out


UPLOAD_RESOURCES = {
    "requests": {"cpu": "100m", "memory": "256Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}


def render_upload_job(
    job: dict[str, Any],
    *,
    secret_name: str,
    retries: int,
    deadline_seconds: int,
) -> dict[str, Any]:
    """The upload Job of a finished ``job`` (the raw Job as the API returned it) whose pod
    ended with its upload pending: the same image and runner, in ``--upload-only`` mode, as the
    owner (the same security contexts), mounting only the owner's home, read-only, and its own
    upload ``secret_name``; no GPU, no dataset. Its pod exits 75 while S3 is unreachable and
    Kubernetes retries it (``retries``, exponential backoff) within ``deadline_seconds``.
    It carries ``UPLOAD_FOR_LABEL``, never ``JOB_ID_LABEL``: it is no job of the owner's."""
    meta = job.get("metadata") or {}
    job_id = str(meta["name"])
    labels = meta.get("labels") or {}
    owner = (meta.get("annotations") or {}).get(OWNER_ANNOTATION, "")
    template = (job.get("spec") or {}).get("template") or {}
    pod_spec = copy.deepcopy(template.get("spec") or {})
    original = (pod_spec.get("containers") or [{}])[0]
    home_mounts = [
        {**m, "readOnly": True}
        for m in original.get("volumeMounts") or []
        if m.get("name") == HOME_VOLUME
    ]
    upload = {"name": "upload", "mountPath": UPLOAD_MOUNT, "readOnly": True}
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": original.get("image"),
        "imagePullPolicy": original.get("imagePullPolicy", "IfNotPresent"),
        "command": list(UPLOAD_ONLY_COMMAND),
        "workingDir": original.get("workingDir"),
        "env": list(original.get("env") or []),
        "volumeMounts": [*home_mounts, upload],
        "securityContext": original.get("securityContext"),
        "resources": copy.deepcopy(UPLOAD_RESOURCES),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    secret = {"secretName": secret_name, "defaultMode": 0o440, "optional": False}
    volumes = [v for v in pod_spec.get("volumes") or [] if v.get("name") == HOME_VOLUME]
    up_labels = {
        **base_labels(JOB_UPLOAD_COMPONENT),
        USER_LABEL: labels.get(USER_LABEL, ""),
        GROUP_LABEL: labels.get(GROUP_LABEL, ""),
        UPLOAD_FOR_LABEL: job_id,
    }
    new_pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_spec.get("securityContext"),
        "containers": [container],
        "volumes": [*volumes, {"name": "upload", "secret": secret}],
    }
    if pod_spec.get("imagePullSecrets"):
        new_pod_spec["imagePullSecrets"] = pod_spec["imagePullSecrets"]
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": upload_job_name(job_id),
            "namespace": meta.get("namespace"),
            "labels": dict(up_labels),
            "annotations": {OWNER_ANNOTATION: owner},
        },
        "spec": {
            "backoffLimit": retries,
            "completions": 1,
            "parallelism": 1,
            "activeDeadlineSeconds": deadline_seconds,
            **({"ttlSecondsAfterFinished": ttl} if isinstance(ttl, int) else {}),
            "template": {
                "metadata": {"labels": dict(up_labels), "annotations": {OWNER_ANNOTATION: owner}},
                "spec": new_pod_spec,
            },
        },
    }
