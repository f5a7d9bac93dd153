"""The spawn page's image picker at 5,000 images, in headless Chromium on the platform.

For the length of the test the platform's policy carries a static catalogue of 5,000 images
that alice (group vision) may use, plus the usual ones and a few of project nlp she may not;
the hub reloads the file, so the spawn page shows the picker. alice types to filter by
framework and CUDA version, then by name, chooses with the keyboard and starts the server,
which runs the image she chose; the server is stopped and the policy restored afterwards.
Screenshots go to test-artifacts/journey/.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import stop_server

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

USER = "alice"  # group vision: projects vision and shared
REPOS, TAGS = 100, 50  # 5,000 images alice may use
FRAMEWORKS = ("pytorch", "tensorflow", "jax")
CUDAS = ("12.4", "12.1", "11.8")
RELOAD_TIMEOUT = 120.0  # s: the hub re-reads the policy every few seconds; parsing 5,000 entries
SPAWN_TIMEOUT = 120_000  # ms: a server takes ~10-40 s to start on a 2-core machine
PICKER = "#profile-option-gpu--image"  # the GPU profile's image field


def repo(r: int) -> tuple[str, str, str, str]:
    """(project, repository, framework, CUDA version) of the test catalogue's repository r."""
    framework = FRAMEWORKS[r % 3]
    return ("vision", "shared")[r % 2], f"team-{r}-{framework}", framework, CUDAS[r % 4 % 3]


def big_catalogue_yaml() -> str:
    """Static catalogue entries, one flow mapping a line (the policy file is bounded at 1 MiB).
    Every fifth repository is a CPU image; repository 7 is recommended."""
    lines = []
    for r in range(REPOS):
        project, name, framework, cuda = repo(r)
        gpu = "false" if r % 5 == 0 else "true"
        rec = ", recommended: true" if r == 7 else ""
        for t in range(TAGS):
            lines.append(
                f"    - {{image: harbor.local/{project}/{name}:v{t}, framework: {framework}, "
                f'cuda: "{cuda}", gpu: {gpu}, description: "Team {r} environment"{rec}}}'
            )
    lines += [f"    - {{image: harbor.local/nlp/private-{n}:v1, gpu: true}}" for n in range(5)]
    return "\n".join(lines) + "\n"


def with_big_catalogue(original: str) -> str:
    """``original`` with the 5,000 images added at the top of its static catalogue."""
    marker = "  static:\n"
    assert marker in original, "the test policy has no static catalogue"
    head, tail = original.split(marker, 1)
    return head + marker + big_catalogue_yaml() + tail


def write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)  # the hub never reads half a file


def wait_for_spawn_page(page: Any, hub: str, pickers: int) -> None:
    """Reload the spawn page until it shows ``pickers`` image pickers (the hub has reloaded
    the policy); polls with a bound, which only ends a stuck test."""
    deadline = time.monotonic() + RELOAD_TIMEOUT
    while True:
        page.goto(f"{hub}/hub/spawn")
        if page.locator("[data-image-picker]").count() == pickers:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the spawn page has no {pickers} picker(s) after the reload")
        page.wait_for_timeout(1000)


@contextmanager
def big_catalogue(platform: Any, page: Any) -> Iterator[None]:
    path = Path(platform.config.policy_path)
    original = path.read_text()
    write(path, with_big_catalogue(original))
    try:
        wait_for_spawn_page(page, platform.hub_url, pickers=2)
        yield
    finally:
        stop_server(platform, USER)  # the spawn page of a running server redirects to it
        write(path, original)
        wait_for_spawn_page(page, platform.hub_url, pickers=0)


def listed(page: Any) -> list[str]:
    """The image references the picker lists now."""
    return page.locator(f"{PICKER}-list [role=option]").evaluate_all(
        "options => options.map((o) => o.dataset.ref)"
    )


def test_the_image_picker_at_5000_images(platform, context, login, shot, servers, hub_server):
    servers.own(USER)
    page = login(context, USER)
    with big_catalogue(platform, page):
        # One catalogue document for both profiles; the plain selects are replaced.
        expect(page.locator("#gpulab-image-catalogue")).to_have_count(1)
        expect(page.locator(f"select{PICKER}")).to_be_hidden()
        box = page.get_by_role("combobox", name="Image").first
        expect(box).to_have_attribute("id", f"{PICKER[1:]}-input")
        page.locator("#profile-item-gpu").check()
        shot(page, "picker-spawn-page")

        # Type to filter by framework and CUDA version: only such images are listed.
        box.click()
        box.press_sequentially("jax 11.8")
        expect(page.locator(f"{PICKER}-list")).to_be_visible()
        expect(page.locator(f"{PICKER}-status")).to_contain_text("images match")
        refs = listed(page)
        assert refs and all("-jax:" in r for r in refs), refs
        options = page.locator(f"{PICKER}-list [role=option]")
        expect(options.first).to_contain_text("CUDA 11.8")
        shot(page, "picker-filtered-by-framework-and-cuda")

        # By name: one repository's tags, grouped under its project; nlp's never appear.
        box.fill("")
        box.press_sequentially("team-42-")
        expect(page.locator(f"{PICKER}-status")).to_contain_text(f"{TAGS} of")
        refs = listed(page)
        assert len(refs) == TAGS and all(r.startswith("harbor.local/vision/team-42-") for r in refs)
        expect(page.locator(f"{PICKER}-list [role=group]").first).to_contain_text("vision")
        box.fill("private")
        expect(page.locator(f"{PICKER}-status")).to_contain_text("No image matches")

        # Escape closes the list and keeps the choice made so far.
        before = page.locator(f"select{PICKER}").input_value()
        page.keyboard.press("Escape")
        expect(page.locator(f"{PICKER}-list")).to_be_hidden()
        assert page.locator(f"select{PICKER}").input_value() == before

        # Choose by keyboard: type, arrow down to the third image, Enter.
        box.fill("")
        box.press_sequentially("team-42- v1")
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowDown")
        active = page.locator(f"{PICKER}-list [role=option][aria-selected=true]")
        expect(active).to_have_count(1)
        wanted = active.get_attribute("data-ref")
        assert box.get_attribute("aria-activedescendant") == active.get_attribute("id")
        shot(page, "picker-keyboard-choice")
        page.keyboard.press("Enter")
        expect(page.locator(f"{PICKER}-list")).to_be_hidden()
        assert page.locator(f"select{PICKER}").input_value() == wanted
        expect(page.locator(f"{PICKER}-details")).to_contain_text("Team 42 environment")
        expect(box).to_have_value(wanted.rsplit("/", 1)[1])
        assert page.url.endswith("/hub/spawn")  # Enter chose an image, it did not submit

        # Start: the server runs the image chosen in the picker.
        page.locator("#profile-option-gpu--gpus").select_option("1")
        page.get_by_role("button", name="Start").click()
        page.wait_for_url(f"**/user/{USER}/lab**", timeout=SPAWN_TIMEOUT)
        model = hub_server(USER)
        assert model is not None and model["ready"]
        assert model["user_options"]["image"] == wanted
        shot(page, "picker-server-started")
