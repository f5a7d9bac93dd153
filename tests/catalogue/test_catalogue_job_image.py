"""The jobs gateway's image check: a job image the catalogue lists without the runner is a
FieldError naming ``image``."""

from __future__ import annotations

from gpulab.hub.catalogue.model import image_from_static
from gpulab.hub.jobs.image_readiness import job_image_problem
from gpulab.hub.jobs.spec import parse_job_spec

NGC = "harbor.local/vision/nvidia-pytorch:24.05-py3"
OURS = "harbor.local/vision/pytorch:2.4"
CATALOGUE = [
    image_from_static({"image": NGC, "notebook": False, "runner": False}),
    image_from_static({"image": OURS}),
]


def spec(image: str):
    return parse_job_spec({"name": "train", "image": image, "command": ["python", "train.py"]})


def test_a_job_image_without_the_runner_is_refused_naming_the_image():
    problem = job_image_problem(CATALOGUE, spec(NGC))
    assert problem is not None and problem.field == "image"
    assert problem.message == f"{NGC} is not ready for jobs: missing the job runner"
    assert "images/framework/Dockerfile" in problem.allowed


def test_a_job_image_with_the_runner_or_unknown_to_the_catalogue_passes():
    assert job_image_problem(CATALOGUE, spec(OURS)) is None
    assert job_image_problem(CATALOGUE, spec("harbor.local/vision/other:1")) is None
