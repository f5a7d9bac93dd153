"""The cached ``Catalogue``: warm reads, last good on failure, bounded first load, background
refresh, static source, construction from config and from the policy."""

from __future__ import annotations

import asyncio
import logging

import pytest
from gpulab.hub.catalogue import (
    Catalogue,
    HarborSource,
    StaticSource,
    catalogue_from_config,
    catalogue_from_policy,
)
from harbor_standin import PASSWORD, ROBOT


def harbor_catalogue(harbor, **kw) -> Catalogue:
    kw.setdefault("first_load_timeout", 60)  # tests wait for the load unless they test the bound
    src_kw = {k: kw.pop(k) for k in ("timeout_seconds", "overall_timeout_seconds") if k in kw}
    src = HarborSource(
        harbor.url,
        projects=["vision"],
        username=ROBOT,
        password=PASSWORD,
        registry="harbor.local",
        **src_kw,
    )
    return Catalogue(src, **kw)


async def until(predicate, limit: float = 10.0) -> None:
    """Wait for a condition (a bound on waiting, not a timing assertion)."""
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110 - polling state another thread changes
            await asyncio.sleep(0.02)


def warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("gpulab.catalogue") and r.levelno == logging.WARNING
    ]


async def test_warm_images_make_no_registry_requests(harbor):
    harbor.add_image("vision", "pytorch", ["2.4"])
    cat = harbor_catalogue(harbor)
    first = await cat.images()
    assert [i.reference for i in first] == ["harbor.local/vision/pytorch:2.4"]
    made = harbor.count
    for _ in range(50):
        assert await cat.images() == first
    assert cat.snapshot() == first
    assert harbor.count == made
    stats = cat.stats
    assert (stats.warm, stats.images, stats.requests, stats.refreshes) == (True, 1, made, 1)
    assert stats.last_refresh is not None and stats.last_error is None


async def test_images_returns_a_copy(harbor):
    harbor.add_image("vision", "pytorch", ["2.4"])
    cat = harbor_catalogue(harbor)
    (await cat.images()).clear()
    assert len(await cat.images()) == 1


async def test_server_errors_keep_the_last_good_catalogue_and_log_once(harbor, caplog):
    harbor.add_image("vision", "pytorch", ["2.4"])
    cat = harbor_catalogue(harbor)
    good = await cat.images()
    harbor.fail(503)
    caplog.set_level(logging.INFO, logger="gpulab.catalogue")
    assert [await cat.refresh() for _ in range(3)] == [False, False, False]
    assert await cat.images() == good
    assert cat.snapshot() == good
    logged = warnings(caplog)
    assert len(logged) == 1  # once per failure streak
    assert "SERVICE_UNAVAILABLE" in logged[0] and "last good catalogue (1 images" in logged[0]
    stats = cat.stats
    assert (stats.failures, stats.consecutive_failures) == (3, 3)
    assert "503" in (stats.last_error or "")

    harbor.fail(None)
    assert await cat.refresh() is True
    assert "answers again after 3 failed loads" in caplog.text
    assert cat.stats.last_error is None and cat.stats.consecutive_failures == 0
    harbor.fail(500)
    assert await cat.refresh() is False
    assert len(warnings(caplog)) == 2  # a new streak is logged again


async def test_timeouts_keep_the_last_good_catalogue(harbor, caplog):
    harbor.add_image("vision", "pytorch", ["2.4"])
    cat = harbor_catalogue(harbor, first_load_timeout=60)
    good = await cat.images()
    assert good
    cat.source.timeout_seconds = 0.2  # type: ignore[attr-defined]
    harbor.latency = 2.0
    caplog.set_level(logging.WARNING, logger="gpulab.catalogue")
    assert await cat.refresh() is False
    assert await cat.images() == good
    assert "timed out" in warnings(caplog)[0]
    assert cat.stats.last_error and "timed out" in cat.stats.last_error


async def test_first_load_slower_than_the_bound_gives_empty_then_fills(harbor, caplog):
    harbor.add_image("vision", "pytorch", ["2.4"])
    harbor.set_hang(True)
    cat = harbor_catalogue(harbor, first_load_timeout=0.2)
    caplog.set_level(logging.WARNING, logger="gpulab.catalogue")
    assert await cat.images() == []  # Harbor is still holding the request: we did not wait for it
    assert await cat.images() == []  # the bound counts from the load's start: no second wait
    # The load's request may reach the stand-in (its own thread) only after both answers on a
    # busy machine: wait for it, then check that it is the only one.
    await until(lambda: harbor.count >= 1)
    assert harbor.count == 1  # one load in flight, shared; no stampede
    assert cat.stats.cold_answers == 2 and not cat.warm
    assert len(warnings(caplog)) == 1 and "not finished after 0.2 s" in warnings(caplog)[0]
    harbor.set_hang(False)
    await until(lambda: cat.warm)
    assert [i.tag for i in await cat.images()] == ["2.4"]
    await cat.stop()


async def test_cold_and_failing_never_raises_and_does_not_hammer_harbor(harbor, caplog):
    harbor.add_image("vision", "pytorch", ["2.4"])
    src = HarborSource(harbor.url, projects=["vision"], username=ROBOT, password="bad-Pa$$")
    cat = Catalogue(src, retry_seconds=60, first_load_timeout=60)
    caplog.set_level(logging.WARNING, logger="gpulab.catalogue")
    assert await cat.images() == []
    made = harbor.count
    assert await cat.images() == []
    assert harbor.count == made  # retried by the background task, not by every caller
    (msg,) = warnings(caplog)
    assert "no catalogue loaded yet" in msg and "UNAUTHORIZED" in msg
    assert "bad-Pa$$" not in caplog.text


async def test_background_refresh_picks_up_a_new_tag(harbor):
    digest = harbor.add_image("vision", "pytorch", ["2.4"])
    cat = harbor_catalogue(harbor, refresh_seconds=0.1)
    await cat.start()
    await cat.start()  # idempotent
    try:
        await until(lambda: cat.warm)
        assert [i.tag for i in cat.snapshot()] == ["2.4"]
        harbor.add_tag("vision", "pytorch", digest, "latest")
        harbor.add_image("vision", "tf", ["2.16"])
        await until(lambda: len(cat.snapshot()) == 3)
        assert {i.reference for i in await cat.images()} == {
            "harbor.local/vision/pytorch:2.4",
            "harbor.local/vision/pytorch:latest",
            "harbor.local/vision/tf:2.16",
        }
    finally:
        await cat.stop()
    refreshes = cat.stats.refreshes
    assert refreshes >= 2
    assert len(cat.snapshot()) == 3  # still readable after stop


async def test_background_refresh_recovers_after_a_failure(harbor):
    harbor.add_image("vision", "pytorch", ["2.4"])
    harbor.fail(502)
    cat = harbor_catalogue(harbor, refresh_seconds=60, retry_seconds=0.05)
    await cat.start()
    try:
        await until(lambda: cat.stats.failures >= 1)
        harbor.fail(None)
        await until(lambda: cat.warm)
    finally:
        await cat.stop()
    assert [i.tag for i in cat.snapshot()] == ["2.4"]


async def test_stop_cancels_a_hanging_load(harbor):
    harbor.add_image("vision", "pytorch", ["2.4"])
    harbor.set_hang(True)
    cat = harbor_catalogue(harbor, first_load_timeout=0)
    await cat.start()
    await until(lambda: harbor.count >= 1)
    await cat.stop()
    assert cat.snapshot() == [] and not cat.warm


async def test_static_source():
    cat = catalogue_from_config(
        "static",
        static=[
            {"image": "harbor.local/shared/pytorch:2.4", "cuda": "12.4", "framework": "pytorch"},
            {"image": "harbor.local/shared/base:1", "display_name": "Base", "gpu": False},
            {"image": "harbor.local/shared/pytorch:2.4"},  # duplicate: the first wins
        ],
    )
    images = await cat.images()
    assert [(i.reference, i.gpu, i.display_name) for i in images] == [
        ("harbor.local/shared/pytorch:2.4", True, "pytorch:2.4"),
        ("harbor.local/shared/base:1", False, "Base"),
    ]
    assert cat.stats.requests == 0


def test_bad_configuration_is_refused_with_the_field():
    with pytest.raises(ValueError, match=r"catalogue.static\[1\]"):
        StaticSource([{"image": "h.io/p/r:1"}, {"image": ""}])
    with pytest.raises(ValueError, match="catalogue.source"):
        catalogue_from_config("nexus")
    with pytest.raises(ValueError, match="harbor.url is required"):
        catalogue_from_config("harbor")
    with pytest.raises(ValueError, match="expected http"):
        catalogue_from_config("harbor", harbor_url="ftp://x")


async def test_catalogue_from_config_harbor(harbor):
    harbor.add_image("vision", "team/pytorch", ["2.4"])
    cat = catalogue_from_config(
        "harbor",
        harbor_url=harbor.url,
        projects=["vision"],
        username=ROBOT,
        password=PASSWORD,
        refresh_seconds=60,
        registry="harbor.local",
    )
    assert await cat.refresh()
    assert [i.reference for i in await cat.images()] == ["harbor.local/vision/team/pytorch:2.4"]


async def test_catalogue_from_policy_static_and_harbor(harbor):
    policy_mod = pytest.importorskip("gpulab.hub.policy")
    static = policy_mod.parse_policy(
        {
            "version": 1,
            "catalogue": {
                "source": "static",
                "static": [
                    {
                        "image": "harbor.local/shared/pytorch:2.4-cuda12.4",
                        "display_name": "PyTorch 2.4 (CUDA 12.4)",
                        "framework": "pytorch",
                        "cuda": "12.4",
                        "gpu": True,
                    }
                ],
            },
        }
    )
    (img,) = await catalogue_from_policy(static).images()
    assert (img.display_name, img.cuda, img.gpu) == ("PyTorch 2.4 (CUDA 12.4)", "12.4", True)

    harbor.add_image("vision", "pytorch", ["2.4"])
    policy = policy_mod.parse_policy(
        {
            "version": 1,
            "catalogue": {
                "source": "harbor",
                "refresh": "5m",
                "harbor": {"url": harbor.url, "projects": ["vision"]},
            },
        }
    )
    env = {"HARBOR_USERNAME": ROBOT, "HARBOR_PASSWORD": PASSWORD}
    cat = catalogue_from_policy(policy, environ=env)
    assert cat.refresh_seconds == 300
    assert await cat.refresh()
    (img,) = await cat.images()
    assert img.reference.endswith("/vision/pytorch:2.4")
