"""`GET /api/v1/images` lists the catalogue's images the caller's groups may use."""

from pathlib import Path

from gpulab.hub.catalogue.model import Image
from gpulab.hub.jobs.gateway.images import allowed_images
from gpulab.hub.policy import load_policy

POLICY = Path(__file__).resolve().parents[1] / "e2e" / "policy.yaml"


def _image(reference: str, recommended: bool = False) -> Image:
    project = reference.split("/")[1]
    repository, tag = reference.split("/", 2)[2].split(":")
    return Image(
        reference=reference,
        project=project,
        repository=repository,
        tag=tag,
        digest=None,
        display_name=repository,
        framework=None,
        cuda=None,
        gpu=project != "shared",
        description="",
        recommended=recommended,
    )


CATALOGUE = [
    _image("harbor.local/vision/pytorch:2.4-cuda12.4"),
    _image("harbor.local/nlp/transformers:4.44"),
    _image("harbor.local/shared/scipy:2024.10"),
    _image("harbor.local/shared/base:1", recommended=True),
]


def test_only_the_groups_projects_are_listed_recommended_first():
    vision = load_policy(POLICY).entitlement(groups=["vision"])
    listed = [i["image"] for i in allowed_images(CATALOGUE, vision)]
    assert listed == [
        "harbor.local/shared/base:1",
        "harbor.local/shared/scipy:2024.10",
        "harbor.local/vision/pytorch:2.4-cuda12.4",
    ]


def test_an_image_says_whether_it_is_recommended_and_for_gpus():
    default = load_policy(POLICY).entitlement(groups=[])
    (first, *_) = allowed_images(CATALOGUE, default)
    assert first["image"] == "harbor.local/shared/base:1"
    assert first["recommended"] is True and first["gpu"] is False


def test_an_image_says_what_it_can_run():
    framework = Image(
        reference="harbor.local/shared/ngc:24.05",
        project="shared",
        repository="ngc",
        tag="24.05",
        digest=None,
        display_name="ngc",
        framework="pytorch",
        cuda="12.4",
        gpu=True,
        description="",
        notebook=None,
        runner="0.1.0",
    )
    default = load_policy(POLICY).entitlement(groups=[])
    listed = {i["image"]: i["ready"] for i in allowed_images([*CATALOGUE, framework], default)}
    assert listed["harbor.local/shared/ngc:24.05"] == {"notebooks": False, "jobs": True}
    assert listed["harbor.local/shared/base:1"] == {"notebooks": True, "jobs": True}
