"""Readiness from gpulab's labels, and the catalogue noticing Harbor took it for anonymous."""

from __future__ import annotations

import logging

from gpulab.hub.catalogue import Catalogue, HarborSource, StaticSource
from gpulab.hub.catalogue.model import readiness
from harbor_standin import PASSWORD, ROBOT

READY = {"org.gpulab.notebook": "0.9.0", "org.gpulab.runner": "0.9.0"}


def source(harbor, projects=("vision",), **kw) -> HarborSource:
    kw.setdefault("username", ROBOT)
    kw.setdefault("password", PASSWORD)
    return HarborSource(harbor.url, projects=projects, registry="harbor.local", **kw)


async def test_framework_image_without_gpulab_labels_is_not_ready(harbor):
    harbor.add_image("vision", "pytorch-notebook", ["2.4"], labels=READY)
    harbor.add_framework_image("vision", "nvidia-pytorch", ["24.05-py3"])
    images = {i.repository: i for i in await source(harbor).fetch()}
    ready, framework = images["pytorch-notebook"], images["nvidia-pytorch"]
    assert readiness(ready).missing == []
    assert framework.framework == "pytorch" and framework.cuda == "12.4"
    assert readiness(framework).notebook_reason == "not ready: missing the Jupyter server"
    assert readiness(framework).missing == ["missing the Jupyter server", "missing the job runner"]


async def test_runner_label_alone_makes_an_image_ready_for_jobs_only(harbor):
    harbor.add_image("vision", "trainer", ["1"], labels={"org.gpulab.runner": "0.9.0"})
    (img,) = await source(harbor).fetch()
    state = readiness(img)
    assert (state.notebooks, state.jobs, img.runner) == (False, True, "0.9.0")


async def test_static_entries_are_ready_unless_the_admin_says_otherwise():
    src = StaticSource(
        [
            {"image": "harbor.local/vision/pytorch:2.4"},
            {"image": "nvcr.io/nvidia/pytorch:24.05-py3", "notebook": False, "runner": False},
        ]
    )
    ours, ngc = await src.fetch()
    assert readiness(ours).missing == []
    assert readiness(ngc).missing == ["missing the Jupyter server", "missing the job runner"]


async def test_robot_account_recognised_by_harbor_lists_private_projects(harbor):
    harbor.add_image("vision", "pytorch", ["1"], labels=READY)
    images = await source(harbor, projects=()).fetch()
    assert [i.reference for i in images] == ["harbor.local/vision/pytorch:1"]


async def test_wrong_credentials_taken_for_anonymous_are_reported_and_last_good_list_served(
    harbor, caplog
):
    harbor.add_image("vision", "pytorch", ["1"], labels=READY)
    harbor.add_image("public", "base", ["1"], labels=READY)
    harbor.public = {"public"}
    harbor.anonymous_on_wrong_credentials = True
    src = source(harbor, projects=())
    cat = Catalogue(src, first_load_timeout=60)
    assert {i.project for i in await cat.images()} == {"vision", "public"}

    harbor.users[ROBOT] = "rotated-elsewhere"  # the robot's secret was rotated at Harbor
    caplog.set_level(logging.WARNING, logger="gpulab.catalogue")
    assert await cat.refresh() is False
    assert {i.project for i in cat.snapshot()} == {"vision", "public"}  # the last good list
    assert cat.stats.misconfiguration is not None
    assert "does not recognise the configured credentials" in cat.stats.misconfiguration
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("does not recognise" in m and "serving the last good catalogue" in m for m in logged)
    assert PASSWORD not in " ".join(logged)
