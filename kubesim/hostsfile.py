"""A pod's ``/etc/hosts``: the kubelet's managed file plus kubesim's stand-in for cluster DNS.

The real kubelet writes a "Kubernetes-managed hosts file" into every pod: localhost, then the
pod's own IP with its hostname (``<hostname>.<subdomain>.<ns>.svc.<domain>`` first when the
pod has a ``subdomain``). Other pods' names come from cluster DNS, which kubesim has not: a
headless Service (``clusterIP: None``) named like a pod's ``subdomain`` and selecting it makes
CoreDNS answer ``<hostname>.<subdomain>.<ns>.svc.cluster.local`` (and, through the search
path, ``<hostname>.<subdomain>``) with the pod's IP. kubesim writes those records into the
hosts file of every pod of the namespace instead, and rewrites them as pods come and go.

As with the endpoints controller, a pod is published once it has an IP and is Ready, or at
once when the Service sets ``publishNotReadyAddresses``. Pure: the kubelet does the I/O.
"""

from __future__ import annotations

from typing import Any

from gpulab.kubesim.selectors import parse_label_selector

CLUSTER_DOMAIN = "cluster.local"
_HEADER = (
    "# Kubernetes-managed hosts file.\n"
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)


def pod_hostname(pod: dict[str, Any]) -> str:
    """The pod's hostname: ``spec.hostname``, else its name (as the kubelet sets it)."""
    return str((pod.get("spec") or {}).get("hostname") or pod["metadata"]["name"])[:63]


def _fqdn(hostname: str, subdomain: str, namespace: str) -> str:
    return f"{hostname}.{subdomain}.{namespace}.svc.{CLUSTER_DOMAIN}"


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _headless_selects(service: dict[str, Any], pod: dict[str, Any]) -> bool:
    spec = service.get("spec") or {}
    selector = spec.get("selector") or {}
    if spec.get("clusterIP") != "None" or not selector:
        return False
    labels = ",".join(f"{k}={v}" for k, v in selector.items())
    if not parse_label_selector(labels).matches(pod):
        return False
    return bool(spec.get("publishNotReadyAddresses")) or _ready(pod)


def published(
    pods: list[dict[str, Any]], services: list[dict[str, Any]]
) -> list[tuple[str, str, str]]:
    """``(ip, fqdn, short name)`` of every pod of one namespace that a headless Service
    publishes by name, sorted by name."""
    by_name = {s["metadata"]["name"]: s for s in services}
    out = []
    for pod in pods:
        md, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
        subdomain, ip = spec.get("subdomain"), status.get("podIP")
        if not subdomain or not ip or md.get("deletionTimestamp"):
            continue
        if status.get("phase") in ("Succeeded", "Failed"):
            continue
        service = by_name.get(subdomain)
        if service is None or not _headless_selects(service, pod):
            continue
        host = pod_hostname(pod)
        out.append((ip, _fqdn(host, subdomain, md["namespace"]), f"{host}.{subdomain}"))
    return sorted(out, key=lambda r: r[1])


def render(pod: dict[str, Any], ip: str, peers: list[tuple[str, str, str]]) -> str:
    """The hosts file of ``pod`` (at ``ip``), with the names ``peers`` publishes."""
    md, spec = pod["metadata"], pod.get("spec") or {}
    host, subdomain = pod_hostname(pod), spec.get("subdomain")
    own = f"{_fqdn(host, subdomain, md['namespace'])}\t{host}" if subdomain else host
    lines = [_HEADER, f"{ip}\t{own}\n"]
    if spec.get("hostAliases"):
        lines.append("\n# Entries added by HostAliases.\n")
    for alias in spec.get("hostAliases") or []:
        lines.append(f"{alias.get('ip')}\t{chr(9).join(alias.get('hostnames') or [])}\n")
    others = [p for p in peers if p[0] != ip]
    if others:
        lines.append("# Published by headless Services (kubesim's cluster DNS).\n")
        lines.extend(f"{p_ip}\t{fqdn}\t{short}\n" for p_ip, fqdn, short in others)
    return "".join(lines)


__all__ = ["CLUSTER_DOMAIN", "pod_hostname", "published", "render"]
