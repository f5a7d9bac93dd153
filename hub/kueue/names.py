"""The names of the Kueue objects gpulab makes (pure): one function per kind, from a policy
group, a GPU type or a JupyterHub user. docs/scheduling.md shows how they fit together.

| object | name |
|---|---|
| ResourceFlavor of a GPU type | ``gpu-<type>`` |
| ResourceFlavor of CPU and memory | ``default`` |
| root Cohort | ``gpulab`` |
| Cohort of a group | ``gpulab-<group>`` |
| ClusterQueue of a user (in their quota group) | ``gpulab-<group>-<user>`` |
| ClusterQueue of a group's preemptible jobs | ``gpulab-<group>--borrow`` |
| LocalQueues of a user (users' namespace) | ``<user>``, ``<user>-preemptible`` |
| WorkloadPriorityClasses | ``gpulab-interactive``, ``gpulab-batch``, ``gpulab-preemptible`` |

``<user>`` is gpulab's safe name of the hub user (:func:`gpulab.hub.names.escape_username`).
``<group>`` and ``<type>`` are the policy's names when they are DNS labels (the usual case);
other names (policy names may hold capitals, ``_`` and ``.``) become a lowercase prefix and a
hash, ``<prefix>--<12 hex digits>``.

Why these names cannot collide: an escaped username never starts with ``-`` and holds ``-``
only before two hex digits or in its hashed form (``--`` and 12 hex digits), so no user's
ClusterQueue is ``gpulab-<group>--borrow`` and no username is ``<another>-preemptible``. The
LocalQueue names are label values too (``kueue.x-k8s.io/queue-name``): at most 63 characters,
longer ones keep a prefix and add a hash (:func:`gpulab.hub.names.join_label`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from ..names import escape_username, is_dns_label, join_label

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "DEFAULT_FLAVOR",
    "GROUP_VERSION",
    "PRIORITY_BATCH",
    "PRIORITY_INTERACTIVE",
    "PRIORITY_PREEMPTIBLE",
    "ROOT_COHORT",
    "UserQueueNames",
    "borrow_cluster_queue",
    "gpu_flavor",
    "group_cohort",
    "preemptible_local_queue",
    "user_cluster_queue",
    "user_local_queue",
    "user_queue_names",
]

API_GROUP: Final = "kueue.x-k8s.io"
API_VERSION: Final = "v1beta2"
GROUP_VERSION: Final = f"{API_GROUP}/{API_VERSION}"  # every object's apiVersion

ROOT_COHORT: Final = "gpulab"
DEFAULT_FLAVOR: Final = "default"  # CPU and memory: every node offers them alike
PRIORITY_INTERACTIVE: Final = "gpulab-interactive"  # notebook servers: never preempted
PRIORITY_BATCH: Final = "gpulab-batch"  # jobs
PRIORITY_PREEMPTIBLE: Final = "gpulab-preemptible"  # jobs marked preemptible: true

_PREEMPTIBLE_SUFFIX: Final = "preemptible"
_BORROW_SUFFIX: Final = "-borrow"  # after the `-` that separates it: `--borrow`
_HASH_LEN: Final = 12


def _part(name: str) -> str:
    """A policy name (a label value) as a DNS label: itself when it is one, else a lowercase
    prefix and a hash of the name (so ``ML`` and ``ml`` stay apart)."""
    if is_dns_label(name):
        return name
    readable = "".join(ch for ch in name.lower() if ch.isascii() and ch.isalnum())
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LEN]
    return f"{readable[:40] or 'x'}--{digest}"


def gpu_flavor(gpu_type: str) -> str:
    """The ResourceFlavor of a policy GPU type (its nodes, by the type's node selector)."""
    return f"gpu-{_part(gpu_type)}"


def group_cohort(group: str) -> str:
    """The Cohort holding a group's quotas (parent: :data:`ROOT_COHORT`)."""
    return f"{ROOT_COHORT}-{_part(group)}"


def user_cluster_queue(group: str, user: str) -> str:
    """The ClusterQueue of a hub user in their quota group (servers and ordinary jobs)."""
    return f"{group_cohort(group)}-{escape_username(user)}"


def borrow_cluster_queue(group: str) -> str:
    """The ClusterQueue of a group's preemptible jobs (they borrow other groups' idle GPUs)."""
    return f"{group_cohort(group)}-{_BORROW_SUFFIX}"


def user_local_queue(user: str) -> str:
    """The LocalQueue of a hub user's servers and ordinary jobs (the queue-name label)."""
    return escape_username(user)


def preemptible_local_queue(user: str) -> str:
    """The LocalQueue of a hub user's preemptible jobs."""
    return join_label(escape_username(user), _PREEMPTIBLE_SUFFIX)


@dataclass(frozen=True)
class UserQueueNames:
    """Every queue name of one user in their quota group."""

    local_queue: str
    preemptible_local_queue: str
    cluster_queue: str
    borrow_cluster_queue: str
    cohort: str


def user_queue_names(user: str, group: str) -> UserQueueNames:
    return UserQueueNames(
        local_queue=user_local_queue(user),
        preemptible_local_queue=preemptible_local_queue(user),
        cluster_queue=user_cluster_queue(group, user),
        borrow_cluster_queue=borrow_cluster_queue(group),
        cohort=group_cohort(group),
    )
