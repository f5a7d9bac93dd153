"""``gpulab admin image check``: what an image lacks, from Harbor or the static catalogue."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml
from gpulab.hub.admin import cli
from gpulab.hub.admin.image import check
from gpulab.hub.catalogue import HarborSource
from harbor_standin import PASSWORD, ROBOT

DEMO_POLICY = Path(__file__).resolve().parents[2] / "hub" / "demo" / "policy.yaml"
NGC = "harbor.local/vision/nvidia-pytorch:24.05-py3"


async def test_image_check_explains_a_framework_image_from_harbor(harbor):
    harbor.add_framework_image("vision", "nvidia-pytorch", ["24.05-py3"])
    src = HarborSource(
        harbor.url, projects=["vision"], username=ROBOT, password=PASSWORD, registry="harbor.local"
    )
    lines, status = await check(src, NGC)
    text = "\n".join(lines)
    assert status == 1
    assert "notebooks: not ready: missing the Jupyter server (org.gpulab.notebook unset)" in text
    assert "jobs:      not ready: missing the job runner (org.gpulab.runner unset)" in text
    assert f"--build-arg BASE={NGC}" in text


async def test_image_check_of_an_image_not_in_the_catalogue_says_so(harbor):
    harbor.add_project("vision")
    src = HarborSource(
        harbor.url, projects=["vision"], username=ROBOT, password=PASSWORD, registry="harbor.local"
    )
    lines, status = await check(src, NGC)
    assert status == 2 and "not in the catalogue" in lines[0]


def test_image_check_command_on_the_static_catalogue(tmp_path, capsys):
    policy = yaml.safe_load(DEMO_POLICY.read_text())
    policy["catalogue"]["static"].append({"image": NGC, "notebook": False, "runner": True})
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["image", "check", NGC, "--policy", str(path)])
    assert cli.run(args) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"{NGC} (from static list of")
    assert "notebooks: not ready: missing the Jupyter server" in out
    assert "jobs:      ready" in out
