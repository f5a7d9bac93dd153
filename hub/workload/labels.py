"""Every label and annotation key gpulab writes or reads, and the values it gives them.

This module is the one place these strings are spelled: servers, jobs, homes, snapshots,
the gateway's cache, the usage recorder and the culler import them from here, so a selector
written in one place always matches the objects another place made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

# -- the Kubernetes recommended labels (app.kubernetes.io/*) -------------------------------
NAME_LABEL: Final = "app.kubernetes.io/name"
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
#: KubeSpawner's own component label (``component: singleuser-server``), read, never written
#: by gpulab: Zero to JupyterHub's network policies and KubeSpawner's reflector select on it.
KUBESPAWNER_COMPONENT_LABEL: Final = "component"
KUBESPAWNER_USERNAME_ANNOTATION: Final = "hub.jupyter.org/username"  # the unescaped hub name
KUBESPAWNER_SERVERNAME_ANNOTATION: Final = "hub.jupyter.org/servername"  # named servers only

APP: Final = "gpulab"  # the value of NAME_LABEL and MANAGED_BY_LABEL on everything gpulab makes
MANAGED_SELECTOR: Final = f"{MANAGED_BY_LABEL}={APP}"

# Values of COMPONENT_LABEL.
SERVER_COMPONENT: Final = "singleuser-server"
JOB_COMPONENT: Final = "job"
JOB_UPLOAD_COMPONENT: Final = "job-upload"  # the Job that uploads what an S3 outage left
HOME_COMPONENT: Final = "home"
HOME_SNAPSHOT_COMPONENT: Final = "home-snapshot"
DATASET_COMPONENT: Final = "dataset"
QUOTA_LEDGER_COMPONENT: Final = "quota-ledger"  # a quota group's reservations (ConfigMap)
NOTIFY_SETTINGS_COMPONENT: Final = "notify-settings"  # a user's notification settings (Secret)
# The Kueue objects gpulab renders from the policy (hub/kueue/): flavors, cohorts, queues,
# priority classes. Sync deletes objects with this component that the policy no longer makes.
KUEUE_COMPONENT: Final = "kueue"

# -- gpulab's labels (selectable) -----------------------------------------------------------
USER_LABEL: Final = "gpulab.io/user"  # the escaped username (gpulab.hub.names.user_label)
GROUP_LABEL: Final = "gpulab.io/group"  # the quota group the workload is charged to
GPUS_LABEL: Final = "gpulab.io/gpus"  # GPUs the workload holds, as a decimal string
GPU_TYPE_LABEL: Final = "gpulab.io/gpu-type"
JOB_ID_LABEL: Final = "gpulab.io/job-id"
# On a multi-node job's Job and pods: how many pods (nodes) it runs; GPUS_LABEL is then every
# node's GPUs together, and its CPU and memory are this many times one pod's.
NODES_LABEL: Final = "gpulab.io/nodes"
# Kubernetes' own: the index of an Indexed Job's pod (label and annotation; also the pod's
# $JOB_COMPLETION_INDEX): a multi-node job's rank, a sweep's run.
JOB_COMPLETION_INDEX_KEY: Final = "batch.kubernetes.io/job-completion-index"
# On a parameter sweep's Job and pods ("true"): each of its runs holds its own GPUs, CPU and
# memory (``gpulab.io/gpus`` is one run's), up to the Job's parallelism at once.
SWEEP_LABEL: Final = "gpulab.io/sweep"
# On an upload Job and its pod: the job whose outputs it uploads (never JOB_ID_LABEL, so the
# upload Job is not a job of its owner's and holds no job slot).
UPLOAD_FOR_LABEL: Final = "gpulab.io/upload-for"
SUBMIT_KEY_LABEL: Final = "gpulab.io/submit-key"  # hash of owner + Idempotency-Key
# On a saved definition's CronJob, its runs and their pods: the definition's id (its CronJob's
# name); and on the CronJob only, the name its owner gave it (unique per owner).
DEFINITION_LABEL: Final = "gpulab.io/definition"
DEFINITION_NAME_LABEL: Final = "gpulab.io/definition-name"
HOME_CLAIM_LABEL: Final = "gpulab.io/home-claim"  # on a snapshot: the claim it was taken of
SNAPSHOT_REASON_LABEL: Final = "gpulab.io/snapshot-reason"
DELETE_AFTER_LABEL: Final = "gpulab.io/delete-after"  # on a home: epoch seconds of the sweep

# -- Kueue's own keys (kueue.x-k8s.io; upstream Kueue v0.19 reads and writes these) ---------
# Kubernetes' own: the Job controller's label on a Job's pods, the Job's name.
JOB_NAME_LABEL: Final = "batch.kubernetes.io/job-name"
KUEUE_QUEUE_LABEL: Final = "kueue.x-k8s.io/queue-name"  # a Job's or Pod's LocalQueue
KUEUE_PRIORITY_LABEL: Final = "kueue.x-k8s.io/priority-class"  # its WorkloadPriorityClass
KUEUE_ADMISSION_GATE: Final = "kueue.x-k8s.io/admission"  # a Pod's gate until admitted
# A scheduled run's pod waits behind this gate until the gateway has put the run's own upload
# credential into the definition's upload Secret (hub/jobs/gateway/definitions.py).
UPLOAD_CREDENTIAL_GATE: Final = "gpulab.io/upload-credential"

# -- Kubernetes' own Indexed Job key (batch.kubernetes.io; set by the Job controller) ---------

# -- gpulab's annotations (not selectable; free text) ---------------------------------------
USERNAME_ANNOTATION: Final = "gpulab.io/username"  # the username as JupyterHub spells it
OWNER_ANNOTATION: Final = "gpulab.io/owner"  # a job's owner, unescaped
SPEC_ANNOTATION: Final = "gpulab.io/spec"  # a job's normalised spec, JSON
# On a definition's upload Secret: the run whose credential it holds now.
UPLOAD_RUN_ANNOTATION: Final = "gpulab.io/upload-for-run"
# On a definition's CronJob: "1" when its owner gave a schedule, "0" for run-now only.
SCHEDULED_ANNOTATION: Final = "gpulab.io/scheduled"
IDEMPOTENCY_ANNOTATION: Final = "gpulab.io/idempotency-key"
CANCELLED_ANNOTATION: Final = "gpulab.io/cancelled-at"
CANCELLED_BY_ANNOTATION: Final = "gpulab.io/cancelled-by"
CANCEL_REASON_ANNOTATION: Final = "gpulab.io/cancel-reason"  # why an admin cancelled it
# Set with the cancel marks when no pod of the Job had started: no output, nothing to upload.
NEVER_STARTED_ANNOTATION: Final = "gpulab.io/never-started"
# Set by the gateway when it fails a Job itself (e.g. its upload Secret is missing).
FAILED_REASON_ANNOTATION: Final = "gpulab.io/failed-reason"
# On a job's Job: the GPU-seconds its runs lost to preemption so far (the gateway adds each
# run Kueue evicted, from the pod's run time: the pod itself is gone after the eviction).
PREEMPTED_GPU_SECONDS_ANNOTATION: Final = "gpulab.io/preempted-gpu-seconds"
PREEMPTIONS_ANNOTATION: Final = "gpulab.io/preemptions"  # and how often it saw that happen
# On a job's Job: the notifications the gateway has sent for it (JSON: event -> delivery
# status), written before delivery so that a restarted gateway never sends one twice.
NOTIFIED_ANNOTATION: Final = "gpulab.io/notified"
# On a GPU job's pod: the SHA-256 (hex) of the job's report token, which its runner sends with
# its GPU utilisation reports to the culler (the token itself is in the job's upload Secret).
REPORT_TOKEN_HASH_ANNOTATION: Final = "gpulab.io/report-token-sha256"
# On a job's Job: the culler found its GPUs idle past the policy's time (JSON: since, reason,
# action): the gateway's notifier tells the owner once per idle episode.
GPU_IDLE_ANNOTATION: Final = "gpulab.io/gpu-idle"
DELETION_SNAPSHOT_ANNOTATION: Final = "gpulab.io/deletion-snapshot"
PROFILE_ANNOTATION: Final = "gpulab.io/profile"
IMAGE_ANNOTATION: Final = "gpulab.io/image"
# On a rendered Kueue object: a digest of what gpulab rendered, so a sync rewrites an object
# only when the policy changed it (the API server fills in defaults, so specs differ anyway).
RENDERED_DIGEST_ANNOTATION: Final = "gpulab.io/rendered-digest"


def base_labels(component: str) -> dict[str, str]:
    """The recommended labels every object gpulab makes carries."""
    return {NAME_LABEL: APP, COMPONENT_LABEL: component, MANAGED_BY_LABEL: APP}


def labels_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    """``metadata.labels`` of a raw API object, ``{}`` when absent."""
    return (obj.get("metadata") or {}).get("labels") or {}
