"""Pod Security admission: a namespace labelled ``pod-security.kubernetes.io/enforce`` refuses
pods that break that level of the Pod Security Standards, as the apiserver's built-in
PodSecurity plugin does.

Only ``enforce`` is implemented (``warn`` and ``audit`` are accepted and ignored), on pod
create; pods made by the job controller come from a Job whose pod template the API checked.
Levels: ``privileged`` (no checks), ``baseline`` and ``restricted``. The checks, their order
and their wording follow upstream's ``k8s.io/pod-security-admission/policy`` (one entry per
check: ``<reason> (<detail>; <detail>)``), so a refusal reads as a real cluster's:

    pods "x" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation
    != false (container "c" must set securityContext.allowPrivilegeEscalation=false), ...

:func:`violations` is pure (a pod and a level in, reasons out); :func:`admit` reads the
namespace's labels from the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from gpulab.kubesim.errors import forbidden
from gpulab.kubesim.store import Store, resource

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
ENFORCE_VERSION_LABEL = "pod-security.kubernetes.io/enforce-version"
LEVELS = ("privileged", "baseline", "restricted")

# Volume types a restricted pod may use (upstream's restrictedVolumes check).
RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
# Capabilities beyond the container runtime's defaults (baseline refuses adding others).
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)

Pod = dict[str, Any]
Container = dict[str, Any]


def _containers(pod: Pod) -> Iterator[Container]:
    spec = pod.get("spec") or {}
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or ():
            if isinstance(c, dict):
                yield c


def _sc(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("securityContext") or {}


def _quoted(names: list[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _who(names: list[str], singular: str = "container", plural: str = "containers") -> str:
    return f"{singular if len(names) == 1 else plural} {_quoted(names)}"


def _containers_where(pod: Pod, bad: Callable[[Container], bool]) -> list[str]:
    return [c.get("name", "") for c in _containers(pod) if bad(c)]


# ---------------------------------------------------------------- the checks, upstream's order
# Each returns (reason, [details]) or None when the pod passes.
Check = Callable[[Pod], "tuple[str, list[str]] | None"]


def _allow_privilege_escalation(pod: Pod) -> tuple[str, list[str]] | None:
    bad = _containers_where(pod, lambda c: _sc(c).get("allowPrivilegeEscalation") is not False)
    if not bad:
        return None
    return (
        "allowPrivilegeEscalation != false",
        [f"{_who(bad)} must set securityContext.allowPrivilegeEscalation=false"],
    )


def _capabilities(restricted: bool) -> Check:
    allowed = frozenset({"NET_BIND_SERVICE"}) if restricted else BASELINE_CAPABILITIES

    def check(pod: Pod) -> tuple[str, list[str]] | None:
        details: list[str] = []
        no_drop: list[str] = []
        for c in _containers(pod):
            caps = _sc(c).get("capabilities") or {}
            if restricted and "ALL" not in (caps.get("drop") or ()):
                no_drop.append(c.get("name", ""))
            added = [a for a in caps.get("add") or () if a not in allowed]
            if added:
                details.append(
                    f'container "{c.get("name", "")}" must not include {_quoted(added)} in '
                    "securityContext.capabilities.add"
                )
        if no_drop:
            details.insert(0, f'{_who(no_drop)} must set securityContext.capabilities.drop=["ALL"]')
        if not details:
            return None
        return ("unrestricted capabilities" if restricted else "non-default capabilities"), details

    return check


def _host_namespaces(pod: Pod) -> tuple[str, list[str]] | None:
    spec = pod.get("spec") or {}
    on = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    return ("host namespaces", [", ".join(on)]) if on else None


def _host_path_volumes(pod: Pod) -> tuple[str, list[str]] | None:
    names = [
        v.get("name", "") for v in (pod.get("spec") or {}).get("volumes") or () if "hostPath" in v
    ]
    return ("hostPath volumes", [_who(names, "volume", "volumes")]) if names else None


def _host_ports(pod: Pod) -> tuple[str, list[str]] | None:
    details = []
    for c in _containers(pod):
        ports = [str(p["hostPort"]) for p in c.get("ports") or () if p.get("hostPort")]
        if ports:
            noun = "hostPort" if len(ports) == 1 else "hostPorts"
            details.append(f'container "{c.get("name", "")}" uses {noun} {", ".join(ports)}')
    return ("hostPort", details) if details else None


def _privileged(pod: Pod) -> tuple[str, list[str]] | None:
    bad = _containers_where(pod, lambda c: _sc(c).get("privileged") is True)
    if not bad:
        return None
    return "privileged", [f"{_who(bad)} must not set securityContext.privileged=true"]


def _restricted_volumes(pod: Pod) -> tuple[str, list[str]] | None:
    details = []
    for v in (pod.get("spec") or {}).get("volumes") or ():
        kinds = [k for k in v if k != "name" and k not in RESTRICTED_VOLUME_TYPES]
        if kinds:
            details.append(
                f'volume "{v.get("name", "")}" uses restricted volume '
                f"type{'s' if len(kinds) > 1 else ''} {_quoted(kinds)}"
            )
    return ("restricted volume types", details) if details else None


def _run_as_non_root(pod: Pod) -> tuple[str, list[str]] | None:
    pod_value = _sc(pod.get("spec") or {}).get("runAsNonRoot")
    details = []
    if pod_value is False:
        details.append("pod must not set securityContext.runAsNonRoot=false")
    explicit_false = _containers_where(pod, lambda c: _sc(c).get("runAsNonRoot") is False)
    if explicit_false:
        details.append(f"{_who(explicit_false)} must not set securityContext.runAsNonRoot=false")
    if pod_value is not True:
        unset = _containers_where(pod, lambda c: _sc(c).get("runAsNonRoot") is None)
        if unset:
            details.append(f"pod or {_who(unset)} must set securityContext.runAsNonRoot=true")
    return ("runAsNonRoot != true", details) if details else None


def _run_as_user(pod: Pod) -> tuple[str, list[str]] | None:
    details = []
    if _sc(pod.get("spec") or {}).get("runAsUser") == 0:
        details.append("pod must not set runAsUser=0")
    bad = _containers_where(pod, lambda c: _sc(c).get("runAsUser") == 0)
    if bad:
        details.append(f"{_who(bad)} must not set runAsUser=0")
    return ("runAsUser=0", details) if details else None


def _seccomp(restricted: bool) -> Check:
    def kind(sc: dict[str, Any]) -> str | None:
        return (sc.get("seccompProfile") or {}).get("type")

    def check(pod: Pod) -> tuple[str, list[str]] | None:
        pod_type = kind(_sc(pod.get("spec") or {}))
        details = []
        if pod_type == "Unconfined":
            details.append('pod must not set securityContext.seccompProfile.type to "Unconfined"')
        bad = _containers_where(pod, lambda c: kind(_sc(c)) == "Unconfined")
        if bad:
            details.append(
                f'{_who(bad)} must not set securityContext.seccompProfile.type to "Unconfined"'
            )
        if restricted and pod_type in (None, "Unconfined"):
            unset = _containers_where(pod, lambda c: kind(_sc(c)) is None)
            if unset:
                details.append(
                    f"pod or {_who(unset)} must set securityContext.seccompProfile.type to "
                    '"RuntimeDefault" or "Localhost"'
                )
        return ("seccompProfile", details) if details else None

    return check


_BASELINE: list[Check] = [
    _capabilities(restricted=False),
    _host_namespaces,
    _host_path_volumes,
    _host_ports,
    _privileged,
    _seccomp(restricted=False),
]
# Restricted replaces baseline's capability, hostPath and seccomp checks with stricter ones
# (upstream's OverrideCheckIDs), in upstream's order of check ids.
_RESTRICTED: list[Check] = [
    _allow_privilege_escalation,
    _capabilities(restricted=True),
    _host_namespaces,
    _host_ports,
    _privileged,
    _restricted_volumes,
    _run_as_non_root,
    _run_as_user,
    _seccomp(restricted=True),
]


def violations(pod: Pod, level: str) -> list[str]:
    """Each failed check of ``level`` as ``reason (details)``; empty when the pod passes."""
    checks = {"baseline": _BASELINE, "restricted": _RESTRICTED}.get(level, [])
    out = []
    for check in checks:
        found = check(pod)
        if found is not None:
            reason, details = found
            out.append(f"{reason} ({'; '.join(details)})" if details else reason)
    return out


def enforced_level(labels: dict[str, str]) -> tuple[str, str] | None:
    """(level, version) a namespace's labels enforce; ``None`` for none or ``privileged``.
    An unknown level is enforced as ``restricted``, as upstream treats an invalid label."""
    level = labels.get(ENFORCE_LABEL)
    if not level or level == "privileged":
        return None
    version = labels.get(ENFORCE_VERSION_LABEL) or "latest"
    return (level if level in LEVELS else "restricted"), version


def admit(store: Store, namespace: str, pod: Pod) -> None:
    """Refuse (403) a pod that breaks the level its namespace enforces."""
    ns = store.get(resource("namespaces"), None, namespace)
    labels = ((ns or {}).get("metadata") or {}).get("labels") or {}
    enforced = enforced_level(labels)
    if enforced is None:
        return
    level, version = enforced
    found = violations(pod, level)
    if found:
        md = pod.get("metadata") or {}
        name = md.get("name") or md.get("generateName", "")
        raise forbidden(
            "pods", name, f'violates PodSecurity "{level}:{version}": {", ".join(found)}'
        )


__all__ = ["ENFORCE_LABEL", "admit", "enforced_level", "violations"]
