"""Parse container image references (``harbor.local/vision/pytorch:2.4``) the way Docker does.

A bare reference (no tag, no digest) means ``:latest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ImageRef", "parse_image_ref"]

DEFAULT_REGISTRY = "docker.io"
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"(?::\d+)?"
)


@dataclass(frozen=True)
class ImageRef:
    registry: str  # "harbor.local" (docker.io when the reference names none)
    repository: str  # "vision/pytorch" (the path after the registry)
    tag: str | None  # "2.4"; "latest" for a bare reference
    digest: str | None  # "sha256:..."

    @property
    def project(self) -> str:
        """The Harbor project: the first path segment after the registry host."""
        return self.repository.split("/", 1)[0]

    @property
    def name(self) -> str:
        """The repository inside the project (``pytorch``; nested names keep their slashes)."""
        parts = self.repository.split("/", 1)
        return parts[1] if len(parts) > 1 else parts[0]

    def __str__(self) -> str:
        ref = f"{self.registry}/{self.repository}"
        if self.tag:
            ref += f":{self.tag}"
        if self.digest:
            ref += f"@{self.digest}"
        return ref


def parse_image_ref(ref: str) -> ImageRef:
    """Split an image reference; raises :class:`ValueError` if it is not one.

    The first path segment is the registry when it contains ``.`` or ``:`` or is
    ``localhost`` (Docker's rule); otherwise the registry is ``docker.io``.
    """
    if not isinstance(ref, str) or not ref or len(ref) > 512 or ref != ref.strip():
        raise ValueError("not an image reference (registry/project/repository:tag)")
    rest, digest = ref, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise ValueError(f"bad digest {digest!r} (expected e.g. sha256:<64 hex digits>)")
    tag = None
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise ValueError(f"bad tag {tag!r}")
    first, sep, path = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry = first
        if not _HOST.fullmatch(registry):
            raise ValueError(f"bad registry host {registry!r}")
    else:
        registry, path = DEFAULT_REGISTRY, rest
        if path and "/" not in path:
            path = f"library/{path}"  # Docker's official images: ubuntu = docker.io/library/ubuntu
    if not path or not all(_PATH_COMPONENT.fullmatch(c) for c in path.split("/")):
        raise ValueError(
            f"bad repository {path!r} (lowercase letters, digits and . _ - separated by /)"
        )
    if tag is None and digest is None:
        tag = "latest"
    return ImageRef(registry=registry, repository=path, tag=tag, digest=digest)
