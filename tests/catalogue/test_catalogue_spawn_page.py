"""The spawn page with images from the Harbor stand-in: a framework image without gpulab's labels
is shown disabled with what it lacks, never offered as a choice that fails to start."""

from __future__ import annotations

from pathlib import Path

from gpulab.hub.catalogue import HarborSource
from gpulab.hub.policy import load_policy
from gpulab.spawner.form import TEMPLATES, build_profile_list, offered_images_by_profile
from harbor_standin import PASSWORD, ROBOT
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader

DEMO_POLICY = Path(__file__).resolve().parents[2] / "hub" / "demo" / "policy.yaml"
READY = {"org.gpulab.notebook": "0.9.0", "org.gpulab.runner": "0.9.0", "io.gpulab.cuda": "12.4"}


async def catalogue_images(harbor):
    harbor.add_image("vision", "pytorch-notebook", ["2.4"], labels=READY)
    harbor.add_framework_image("vision", "nvidia-pytorch", ["24.05-py3"])
    src = HarborSource(
        harbor.url, projects=["vision"], username=ROBOT, password=PASSWORD, registry="harbor.local"
    )
    return await src.fetch()


def render_form(profile_list):
    loader = ChoiceLoader([FileSystemLoader(TEMPLATES), PackageLoader("kubespawner", "templates")])
    return (
        Environment(loader=loader)
        .get_template("form.html")
        .render(profile_list=profile_list, user_options={})
    )


async def test_spawn_page_marks_a_framework_image_not_ready_with_its_reason(harbor):
    images = await catalogue_images(harbor)
    ent = load_policy(DEMO_POLICY).entitlement(["vision"])
    gpu = build_profile_list(ent, images)[0]
    choices = gpu["profile_options"]["image"]["choices"]
    ngc = next(c for ref, c in choices.items() if "nvidia-pytorch" in ref)
    ours = next(c for ref, c in choices.items() if "pytorch-notebook" in ref)
    assert ngc["disabled"] is True and ngc["reason"] == "not ready: missing the Jupyter server"
    assert not ngc["default"] and ours["default"] and "disabled" not in ours
    html = render_form([gpu])
    (option,) = [
        line for line in html.splitlines() if "nvidia-pytorch" in line and "<option" in line
    ]
    assert "disabled" in option and "not ready: missing the Jupyter server" in option


async def test_a_not_ready_image_is_not_accepted_by_the_spawner(harbor):
    images = await catalogue_images(harbor)
    ent = load_policy(DEMO_POLICY).entitlement(["vision"])
    startable = offered_images_by_profile(ent, images)["gpu"]
    assert [ref.rsplit("/", 1)[-1] for ref in startable] == ["pytorch-notebook:2.4"]
