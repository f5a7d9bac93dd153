"""Pod Security admission's checks (pure): which pods break "restricted" and "baseline", in
upstream's words; gpulab's own security contexts pass "restricted"."""

from __future__ import annotations

from typing import Any

from gpulab.hub.workload.security import CONTAINER_SECURITY_CONTEXT, POD_SECURITY_CONTEXT
from gpulab.kubesim.podsecurity import enforced_level, violations


def pod(containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"containers": containers, **spec}}


def test_gpulabs_security_contexts_pass_restricted() -> None:
    gpulab_pod = pod(
        [{"name": "notebook", "image": "x", "securityContext": dict(CONTAINER_SECURITY_CONTEXT)}],
        securityContext=dict(POD_SECURITY_CONTEXT),
        volumes=[
            {"name": "home", "persistentVolumeClaim": {"claimName": "home-alice"}},
            {"name": "shm", "emptyDir": {"medium": "Memory"}},
        ],
    )
    assert violations(gpulab_pod, "restricted") == []


def test_a_root_pod_with_the_hosts_root_breaks_restricted_in_upstreams_words() -> None:
    attack = pod(
        [{"name": "sh", "image": "x", "securityContext": {"runAsUser": 0}}],
        volumes=[{"name": "root", "hostPath": {"path": "/"}}],
    )
    assert violations(attack, "restricted") == [
        'allowPrivilegeEscalation != false (container "sh" must set '
        "securityContext.allowPrivilegeEscalation=false)",
        'unrestricted capabilities (container "sh" must set securityContext.capabilities.drop=["ALL"])',
        'restricted volume types (volume "root" uses restricted volume type "hostPath")',
        'runAsNonRoot != true (pod or container "sh" must set securityContext.runAsNonRoot=true)',
        'runAsUser=0 (container "sh" must not set runAsUser=0)',
        'seccompProfile (pod or container "sh" must set securityContext.seccompProfile.type to '
        '"RuntimeDefault" or "Localhost")',
    ]


def test_a_pod_level_context_covers_every_container() -> None:
    ok = dict(CONTAINER_SECURITY_CONTEXT)
    del ok["runAsNonRoot"], ok["seccompProfile"]
    two = pod(
        [{"name": "a", "securityContext": ok}, {"name": "b", "securityContext": ok}],
        securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    )
    assert violations(two, "restricted") == []


def test_several_containers_are_named_together() -> None:
    assert violations(pod([{"name": "a"}, {"name": "b"}]), "restricted")[0] == (
        'allowPrivilegeEscalation != false (containers "a", "b" must set '
        "securityContext.allowPrivilegeEscalation=false)"
    )


def test_privileged_host_namespaces_and_added_capabilities_break_baseline() -> None:
    bad = pod(
        [
            {
                "name": "c",
                "securityContext": {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}},
            }
        ],
        hostPID=True,
        hostNetwork=True,
        volumes=[{"name": "root", "hostPath": {"path": "/"}}],
    )
    assert violations(bad, "baseline") == [
        'non-default capabilities (container "c" must not include "SYS_ADMIN" in '
        "securityContext.capabilities.add)",
        "host namespaces (hostNetwork=true, hostPID=true)",
        'hostPath volumes (volume "root")',
        'privileged (container "c" must not set securityContext.privileged=true)',
    ]


def test_baseline_admits_a_plain_pod_that_restricted_refuses() -> None:
    plain = pod([{"name": "c", "image": "x"}])
    assert violations(plain, "baseline") == []
    assert violations(plain, "restricted")


def test_only_the_enforce_label_enforces() -> None:
    assert enforced_level({"pod-security.kubernetes.io/warn": "restricted"}) is None
    assert enforced_level({"pod-security.kubernetes.io/enforce": "privileged"}) is None
    assert enforced_level({"pod-security.kubernetes.io/enforce": "restricted"}) == (
        "restricted",
        "latest",
    )
