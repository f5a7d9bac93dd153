"""Job objects as the gateway's cache holds them, for the notification tests."""

from __future__ import annotations

import json
from typing import Any

from gpulab.hub.names import escape_username
from gpulab.hub.workload.labels import (
    JOB_COMPONENT,
    JOB_ID_LABEL,
    NOTIFIED_ANNOTATION,
    OWNER_ANNOTATION,
    PREEMPTIONS_ANNOTATION,
    USER_LABEL,
    base_labels,
)


def job(
    name: str,
    owner: str = "alice",
    *,
    complete: bool = False,
    preemptions: int = 0,
    notified: dict[str, Any] | None = None,
) -> dict[str, Any]:
    annotations = {OWNER_ANNOTATION: owner}
    if preemptions:
        annotations[PREEMPTIONS_ANNOTATION] = str(preemptions)
    if notified is not None:
        annotations[NOTIFIED_ANNOTATION] = json.dumps(notified)
    status: dict[str, Any] = {}
    if complete:
        status = {
            "conditions": [{"type": "Complete", "status": "True"}],
            "completionTime": "2099-01-01T00:00:00Z",
        }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "labels": {
                **base_labels(JOB_COMPONENT),
                JOB_ID_LABEL: name,
                USER_LABEL: escape_username(owner),
            },
            "annotations": annotations,
        },
        "spec": {
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "job", "image": "busybox"}],
                }
            },
        },
        "status": status,
    }
