"""The security contexts of every gpulab pod, server or job.

Non-root, no privilege escalation, no capabilities, seccomp RuntimeDefault: what the
Kubernetes "restricted" Pod Security Standard asks for (docs/architecture.md, security model).
"""

from __future__ import annotations

from typing import Any, Final

RUN_AS_USER: Final = 1000
RUN_AS_GROUP: Final = 100
FS_GROUP: Final = 100
POD_SECURITY_CONTEXT: Final[dict[str, Any]] = {
    "runAsNonRoot": True,
    "runAsUser": RUN_AS_USER,
    "runAsGroup": RUN_AS_GROUP,
    "fsGroup": FS_GROUP,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY_CONTEXT: Final[dict[str, Any]] = {
    "runAsNonRoot": True,
    "runAsUser": RUN_AS_USER,
    "runAsGroup": RUN_AS_GROUP,
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
