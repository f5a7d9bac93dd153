"""One :class:`~gpulab.hub.policy.PolicyFile` per policy path for the whole hub process.

The spawners (one per server) and the hub's own configuration callables (``hub/config.py``'s
named-server limit) read the same policy object, loaded once and reloaded by one watcher
(started by the first spawner that needs it).
"""

from __future__ import annotations

import logging

from .policy import PolicyFile

__all__ = ["shared_policy_file"]

_files: dict[str, PolicyFile] = {}


def shared_policy_file(path: str) -> PolicyFile:
    """The hub's policy file at ``path`` (loaded on first use; raises PolicyError)."""
    policy_file = _files.get(path)
    if policy_file is None:
        policy_file = _files[path] = PolicyFile(path, logging.getLogger("gpulab.policy"))
    return policy_file
