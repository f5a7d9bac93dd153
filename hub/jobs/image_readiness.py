"""Whether a job's image can run it: a job needs ``gpulab-job-runner`` in its image unless it
asks for the plain-command mode (``plain: true``, docs/jobs.md). Pure: the gateway passes the
catalogue's images; an image the catalogue does not list is not judged here (the policy's
image rules decide whether it may be used at all)."""

from __future__ import annotations

from collections.abc import Iterable

from ..catalogue.model import MISSING_RUNNER, Image, readiness
from ..field_errors import FieldError
from .spec import JobSpec

__all__ = ["job_image_problem"]

_ALLOWED = (
    "an image with gpulab-job-runner (label org.gpulab.runner: build it FROM the framework "
    "image with images/framework/Dockerfile), or plain: true to run the command as is "
    "(no notebook, no checkpoint or progress features; log and outputs still kept)"
)


def job_image_problem(images: Iterable[Image], spec: JobSpec) -> FieldError | None:
    """The :class:`FieldError` naming ``image`` when the catalogue lists ``spec.image`` as
    lacking the runner and the spec does not ask for the plain mode; else None."""
    if spec.image is None or getattr(spec, "plain", False):
        return None
    for img in images:
        if img.reference == spec.image:
            if readiness(img).jobs:
                return None
            return FieldError(
                "image", f"{spec.image} is not ready for jobs: {MISSING_RUNNER}", _ALLOWED
            )
    return None
