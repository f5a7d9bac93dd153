"""The Harbor client against the stand-in, over real HTTP."""

from __future__ import annotations

import logging
import math

import httpx
import pytest
from gpulab.hub.catalogue import CatalogueError, HarborSource
from harbor_standin import PASSWORD, ROBOT


def source(harbor, projects=("vision",), **kw) -> HarborSource:
    kw.setdefault("username", ROBOT)
    kw.setdefault("password", PASSWORD)
    return HarborSource(harbor.url, projects=projects, registry="harbor.local", **kw)


async def test_paging_across_more_than_100_artifacts(harbor):
    for i in range(250):
        harbor.add_image("vision", "pytorch", [f"v{i}"], labels={"io.gpulab.cuda": "12.4"})
    src = source(harbor)
    images = await src.fetch()
    assert sorted(i.tag for i in images) == sorted(f"v{i}" for i in range(250))
    assert all(i.cuda == "12.4" and i.gpu for i in images)
    # who-am-i + 1 repository list + ceil(250 / 100) artifact pages, and nothing else
    assert src.requests == harbor.count == 2 + math.ceil(250 / 100)
    pages = sorted(p for p in harbor.requests if "/artifacts?" in p)
    assert all("page_size=100" in p for p in pages)
    assert {p.split("page=")[-1].split("&")[0] for p in pages} == {"1", "2", "3"}


async def test_paging_by_link_header_when_there_is_no_total_count(harbor):
    harbor.send_total_count = False
    for i in range(230):
        harbor.add_image("vision", "tf", [f"t{i}"])
    src = source(harbor)
    images = await src.fetch()
    assert len(images) == 230
    assert src.requests == 1 + 1 + 3  # who-am-i, repositories, three artifact pages


async def test_many_repositories_are_paged_too(harbor):
    for i in range(105):
        harbor.add_image("vision", f"repo{i:03d}", ["1"])
    src = source(harbor)
    images = await src.fetch()
    assert len(images) == 105
    assert (
        src.requests == 1 + 2 + 105
    )  # who-am-i, two repository pages, one artifact page per repository


async def test_nested_repository_names(harbor):
    harbor.add_image(
        "vision", "team/sub/pytorch", ["2.4"], labels={"io.gpulab.framework": "pytorch"}
    )
    harbor.add_image("vision", "team/jax", ["0.4"])
    images = await source(harbor).fetch()
    assert [(i.repository, i.reference) for i in images] == [
        ("team/jax", "harbor.local/vision/team/jax:0.4"),
        ("team/sub/pytorch", "harbor.local/vision/team/sub/pytorch:2.4"),
    ]
    assert any("team%252Fsub%252Fpytorch/artifacts" in p for p in harbor.requests)


async def test_standin_refuses_once_encoded_nested_names_like_harbor(harbor):
    harbor.add_image("vision", "team/sub/pytorch", ["2.4"])
    async with httpx.AsyncClient(base_url=harbor.url, auth=(ROBOT, PASSWORD)) as client:
        once = await client.get(
            "/api/v2.0/projects/vision/repositories/team%2Fsub%2Fpytorch/artifacts"
        )
        twice = await client.get(
            "/api/v2.0/projects/vision/repositories/team%252Fsub%252Fpytorch/artifacts"
        )
        too_big = await client.get("/api/v2.0/projects/vision/repositories?page_size=101")
    assert (once.status_code, twice.status_code) == (404, 200)
    assert too_big.status_code == 422
    assert "less than or equal to 100" in too_big.json()["errors"][0]["message"]


async def test_multi_arch_index_reads_the_linux_amd64_child(harbor):
    harbor.add_index(
        "vision",
        "jax",
        ["0.4.30"],
        [
            ("linux", "arm64", {"io.gpulab.framework": "jax-arm", "io.gpulab.cuda": "12.1"}),
            ("linux", "amd64", {"io.gpulab.framework": "jax", "com.nvidia.cuda.version": "12.3.2"}),
        ],
        annotations={"org.opencontainers.image.title": "JAX 0.4.30"},
    )
    src = source(harbor)
    (img,) = await src.fetch()
    assert (img.reference, img.framework, img.cuda, img.gpu, img.platform, img.display_name) == (
        "harbor.local/vision/jax:0.4.30",
        "jax",
        "12.3",
        True,
        "linux/amd64",
        "JAX 0.4.30",
    )
    assert img.digest and img.digest.startswith("sha256:")
    assert src.requests == 4  # who-am-i, repositories, artifacts, the amd64 child
    assert harbor.requests[-1].split("/artifacts/")[1].startswith("sha256:")


async def test_untagged_artifacts_charts_and_hidden_images_are_skipped(harbor):
    harbor.add_image("vision", "pytorch", ["2.4"])
    harbor.add_untagged("vision", "pytorch")
    harbor.add_chart("vision", "charts/notebook", ["1.0.0"])
    harbor.add_image("vision", "pytorch", ["old"], harbor_labels=["gpulab-hidden"])
    harbor.add_image("vision", "pytorch", ["wip"], labels={"io.gpulab.hidden": "true"})
    images = await source(harbor).fetch()
    assert [i.reference for i in images] == ["harbor.local/vision/pytorch:2.4"]


async def test_one_image_per_tag_and_several_projects(harbor):
    harbor.add_image("vision", "pytorch", ["2.4", "latest"])
    harbor.add_image("shared", "base", ["1"])
    harbor.add_image("other", "secret", ["1"])
    images = await source(harbor, projects=("vision", "shared")).fetch()
    assert [i.reference for i in images] == [
        "harbor.local/shared/base:1",
        "harbor.local/vision/pytorch:2.4",
        "harbor.local/vision/pytorch:latest",
    ]


async def test_no_projects_configured_reads_every_visible_project(harbor):
    harbor.add_image("vision", "pytorch", ["1"])
    harbor.add_image("shared", "base", ["1"])
    images = await source(harbor, projects=()).fetch()
    assert {i.project for i in images} == {"vision", "shared"}
    assert harbor.requests[0] == "/api/v2.0/users/current"
    assert harbor.requests[1].startswith("/api/v2.0/projects?")


async def test_registry_defaults_to_the_harbor_host(harbor):
    harbor.add_image("vision", "pytorch", ["1"])
    src = HarborSource(harbor.url, projects=["vision"], username=ROBOT, password=PASSWORD)
    (img,) = await src.fetch()
    assert img.reference == f"{harbor.url.removeprefix('http://')}/vision/pytorch:1"


async def test_auth_failure_carries_harbors_message_and_no_password(harbor, caplog):
    harbor.add_image("vision", "pytorch", ["1"])
    caplog.set_level(logging.DEBUG)
    src = source(harbor, password="wr0ng-Pa$$word")
    with pytest.raises(CatalogueError) as err:
        await src.fetch()
    exc = err.value
    assert (exc.code, exc.status) == ("UNAUTHORIZED", 401)
    assert "unauthorized" in str(exc)
    for text in (str(exc), repr(exc), repr(src), caplog.text):
        assert "wr0ng-Pa$$word" not in text and PASSWORD not in text


async def test_credentials_in_the_url_are_dropped(harbor):
    harbor.add_image("vision", "pytorch", ["1"])
    url = harbor.url.replace("http://", "http://robot$gpulab:leaked@")
    src = HarborSource(url, projects=["vision"])
    assert "leaked" not in src.url
    with pytest.raises(CatalogueError) as err:
        await src.fetch()
    assert err.value.code == "UNAUTHORIZED" and "leaked" not in str(err.value)


async def test_unknown_project_is_a_clear_error(harbor):
    with pytest.raises(CatalogueError) as err:
        await source(harbor, projects=("nope",)).fetch()
    assert (err.value.code, err.value.status) == ("NOT_FOUND", 404)
    assert "project nope not found" in str(err.value)


async def test_server_error_becomes_catalogue_error(harbor):
    harbor.add_image("vision", "pytorch", ["1"])
    harbor.fail(503)
    with pytest.raises(CatalogueError) as err:
        await source(harbor).fetch()
    assert (err.value.code, err.value.status) == ("SERVICE_UNAVAILABLE", 503)
    assert "injected failure" in str(err.value)


async def test_failure_on_a_later_page_fails_the_whole_fetch(harbor):
    for i in range(150):
        harbor.add_image("vision", "pytorch", [f"v{i}"])
    harbor.fail(500, path_contains="page=2")
    with pytest.raises(CatalogueError) as err:
        await source(harbor).fetch()
    assert err.value.status == 500


async def test_request_timeout(harbor):
    harbor.add_image("vision", "pytorch", ["1"])
    harbor.latency = 2.0
    with pytest.raises(CatalogueError) as err:
        await source(harbor, timeout_seconds=0.2).fetch()
    assert err.value.code == "TIMEOUT"
    assert "timed out" in str(err.value)


async def test_overall_timeout(harbor):
    harbor.add_image("vision", "pytorch", ["1"])
    harbor.set_hang(True)
    with pytest.raises(CatalogueError) as err:
        await source(harbor, timeout_seconds=30, overall_timeout_seconds=0.3).fetch()
    harbor.set_hang(False)
    assert err.value.code == "TIMEOUT"
    assert "longer than 0.3 s" in str(err.value)


async def test_unreachable_harbor(harbor):
    with pytest.raises(CatalogueError) as err:
        await HarborSource("http://127.0.0.1:9", projects=["p"], password="pw-xyz").fetch()
    assert err.value.code == "UNREACHABLE"
    assert "pw-xyz" not in str(err.value)


async def test_concurrency_is_bounded(harbor):
    for i in range(24):
        harbor.add_image("vision", f"r{i:02d}", ["1"])
    harbor.latency = 0.05
    images = await source(harbor, concurrency=3).fetch()
    assert len(images) == 24
    assert 1 < harbor.max_in_flight <= 3
