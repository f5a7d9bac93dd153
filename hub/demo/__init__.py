"""The demo: a policy and accounts for ``gpulab up``, the local authenticator and the tests.

They ship as package data (``policy.yaml``, ``users.yaml``), so ``gpulab up`` finds them in an
installed wheel as well as in a checkout.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["policy_file", "users_file"]


def policy_file() -> Path:
    """The demo policy."""
    return _on_disk("policy.yaml")


def users_file() -> Path:
    """The demo accounts and their hub groups."""
    return _on_disk("users.yaml")


def _on_disk(name: str) -> Path:
    resource = files(__name__) / name
    # The hub and its services read the policy by path and watch it for changes, so a path on
    # disk is needed, which any unpacked install (wheel or editable) gives.
    if not isinstance(resource, Path) or not resource.is_file():
        raise FileNotFoundError(
            f"{name} is not a file of the installed package {__name__}: reinstall gpulab"
        )
    return resource
