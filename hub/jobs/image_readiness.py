"""Whether a job's image can run it: a job needs ``gpulab-job-runner`` in its image (label
``org.gpulab.runner``, docs/catalogue.md). Pure: the gateway passes the catalogue's images; an
image the catalogue does not list is not judged here (the policy's image rules decide whether
it may be used at all)."""

from __future__ import annotations

from collections.abc import Iterable

from ..catalogue.model import MISSING_RUNNER, Image, readiness
from ..field_errors import FieldError
from .spec import JobSpec

__all__ = ["job_image_problem"]

_ALLOWED = (
    "an image of the catalogue with gpulab-job-runner (label org.gpulab.runner); for a "
    "framework image, build one FROM it with images/framework/Dockerfile"
)


def job_image_problem(images: Iterable[Image], spec: JobSpec) -> FieldError | None:
    """The :class:`FieldError` naming ``image`` when the catalogue lists ``spec.image`` as
    lacking the runner; else None."""
    if spec.image is None:
        return None
    for img in images:
        if img.reference == spec.image:
            if readiness(img).jobs:
                return None
            return FieldError(
                "image", f"{spec.image} is not ready for jobs: {MISSING_RUNNER}", _ALLOWED
            )
    return None
