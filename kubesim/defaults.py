"""API defaulting applied when an object is created, whoever creates it.

The real apiserver fills defaults (pod restartPolicy, container imagePullPolicy, Job
selector and template labels, service cluster IP, …) before storing. Clients read them back
(kubectl describe, KubeSpawner's reflector, the job controller's selector), so kubesim
applies the same ones in the store's create path — both for HTTP clients and for the
in-process controllers.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
from typing import Any

SNAPSHOT_GROUP = "snapshot.storage.k8s.io"
_cluster_ips = (str(ipaddress.IPv4Address("10.96.0.10") + i) for i in itertools.count())


def on_create(rt: Any, obj: dict[str, Any]) -> None:
    handler = _HANDLERS.get(rt.kind)
    if handler is not None:
        handler(obj)


def _namespace(obj: dict[str, Any]) -> None:
    md = obj["metadata"]
    md.setdefault("labels", {})["kubernetes.io/metadata.name"] = md["name"]
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj["status"] = {"phase": "Active"}


def _image_pull_policy(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    if ":" not in last or last.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def pod_spec_defaults(spec: dict[str, Any]) -> None:
    """Defaults of a PodSpec (also used for Job pod templates)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    if "serviceAccountName" not in spec:
        spec["serviceAccountName"] = spec.get("serviceAccount", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        c.setdefault("imagePullPolicy", _image_pull_policy(c.get("image", "")))
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        resources = c.setdefault("resources", {})
        limits = resources.get("limits") or {}
        if limits:
            # Requests default to limits for any resource with a limit but no request.
            requests = resources.setdefault("requests", {})
            for name, value in limits.items():
                requests.setdefault(name, value)
        for port in c.get("ports") or []:
            port.setdefault("protocol", "TCP")


def qos_class(spec: dict[str, Any]) -> str:
    containers = spec.get("containers") or []
    reqs = [(c.get("resources") or {}).get("requests") or {} for c in containers]
    lims = [(c.get("resources") or {}).get("limits") or {} for c in containers]
    if not any(reqs) and not any(lims):
        return "BestEffort"
    guaranteed = all(
        lim.get(r) is not None and req.get(r, lim.get(r)) == lim.get(r)
        for req, lim in zip(reqs, lims, strict=True)
        for r in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _pod(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    pod_spec_defaults(spec)
    spec.setdefault("priority", 0)
    spec.setdefault(
        "tolerations",
        [
            {
                "key": f"node.kubernetes.io/{t}",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            }
            for t in ("not-ready", "unreachable")
        ],
    )
    # Like the pod strategy's PrepareForCreate: status is the server's, not the creator's.
    obj["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}


def _job(obj: dict[str, Any]) -> None:
    md, spec = obj["metadata"], obj.setdefault("spec", {})
    if "completions" not in spec and "parallelism" not in spec:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    # With a per-index limit the job-wide one steps aside (the apiserver's default: MaxInt32).
    spec.setdefault("backoffLimit", 2147483647 if "backoffLimitPerIndex" in spec else 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    template = spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    if not spec.get("manualSelector"):
        # The apiserver generates the selector from the Job's uid (batch/v1 job strategy).
        uid = md["uid"]
        labels.update(
            {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": md["name"],
                "controller-uid": uid,
                "job-name": md["name"],
            }
        )
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    pod_spec_defaults(template.setdefault("spec", {}))
    obj["status"] = {}  # the job controller owns status


def _service(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec.get("clusterIP") != "None":
        spec.setdefault("clusterIP", next(_cluster_ips))
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    obj.setdefault("status", {"loadBalancer": {}})


def _pvc(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("volumeMode", "Filesystem")
    # kubesim has an always-available provisioner with Immediate binding: claims bind at once.
    requested = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    for src, dst in (("dataSource", "dataSourceRef"), ("dataSourceRef", "dataSource")):
        ref = spec.get(src)  # AnyVolumeDataSource: the two fields mirror each other
        if isinstance(ref, dict) and not spec.get(dst) and not ref.get("namespace"):
            spec[dst] = dict(ref)
    source = spec.get("dataSource") or {}
    if source.get("kind") == "VolumeSnapshot" and source.get("apiGroup") == SNAPSHOT_GROUP:
        # Restored from a snapshot: Pending until kubesim.snapshots has filled the folder.
        obj["status"] = {"phase": "Pending"}
        return
    status: dict[str, Any] = {"phase": "Bound", "accessModes": spec.get("accessModes") or []}
    if requested:
        status["capacity"] = {"storage": requested}
    spec.setdefault("volumeName", f"pvc-{obj['metadata']['uid']}")
    obj["status"] = status


def _volume_snapshot(obj: dict[str, Any]) -> None:
    obj.pop("status", None)  # a status subresource: set by the snapshot controller only


def _secret(obj: dict[str, Any]) -> None:
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None)
    if string_data:
        data = obj.setdefault("data", {})
        for k, v in string_data.items():
            data[k] = base64.b64encode(str(v).encode()).decode()


def _resource_quota(obj: dict[str, Any]) -> None:
    hard = dict((obj.get("spec") or {}).get("hard") or {})
    obj["status"] = {"hard": hard, "used": {k: "0" for k in hard}}


def limit_range_defaults(obj: dict[str, Any]) -> None:
    """``SetDefaults_LimitRangeItem`` for Container items."""
    for item in (obj.get("spec") or {}).get("limits") or []:
        if item.get("type") != "Container":
            continue
        default = item.setdefault("default", {})
        for name, value in (item.get("max") or {}).items():
            default.setdefault(name, value)
        default_request = item.setdefault("defaultRequest", {})
        for source in (default, item.get("min") or {}):
            for name, value in source.items():
                default_request.setdefault(name, value)
        for key in ("default", "defaultRequest"):
            if not item[key]:
                del item[key]


_HANDLERS = {
    "Namespace": _namespace,
    "Pod": _pod,
    "Job": _job,
    "Service": _service,
    "PersistentVolumeClaim": _pvc,
    "Secret": _secret,
    "ResourceQuota": _resource_quota,
    "LimitRange": limit_range_defaults,
    "VolumeSnapshot": _volume_snapshot,
}
