"""The image choice's data: a plain select for small catalogues; for large ones a few images
for the form without JavaScript and one compact catalogue document per page for the picker."""

from __future__ import annotations

import json
import re
from typing import Any

from gpulab.hub.catalogue.model import Image, image_from_static
from gpulab.spawner.form import build_profile_list
from gpulab.spawner.picker import FALLBACK_MAX, RECENT_MAX, catalogue_json, remember_recent
from spawner_testlib import demo_images, demo_policy
from test_spawner_form import render_form

POLICY = demo_policy()
VISION = POLICY.entitlement(["vision"])  # profiles gpu (GPU images only) and cpu (all)
PROJECTS = ("vision", "shared")


def big_catalogue(repos: int = 100, tags: int = 50) -> list[Image]:
    """``repos`` x ``tags`` images as Harbor lists them: tags of a repository together, the
    repository's description, framework and CUDA version on each; odd repositories GPU ones,
    repository 3 recommended."""
    return [
        image_from_static(
            {
                "image": f"harbor.local/{PROJECTS[r % 2]}/repo-{r}:v{t}",
                "description": f"tools of team {r}",
                "framework": ("pytorch", "jax")[r % 2],
                "cuda": "12.4" if r % 2 else None,
                "gpu": bool(r % 2),
                "recommended": r == 3,
            }
        )
        for r in range(repos)
        for t in range(tags)
    ]


BIG = big_catalogue()


def image_options(**kw: Any) -> dict[str, dict[str, Any]]:
    return {p["slug"]: p["profile_options"]["image"] for p in build_profile_list(VISION, BIG, **kw)}


def expand(document: str) -> list[dict[str, Any]]:
    """The catalogue document's images, expanded as image_picker.js expands them."""
    doc = json.loads(document)
    s = doc["s"]
    out = []
    for prefix, tags, name_prefix, name_suffix, group, fw, cuda, desc, flags in doc["r"]:
        for tag in tags.split(" "):
            out.append(
                {
                    "reference": prefix + tag,
                    "name": name_prefix if name_suffix is None else name_prefix + tag + name_suffix,
                    "project": s[group],
                    "framework": s[fw] or None,
                    "cuda": s[cuda] or None,
                    "description": s[desc],
                    "gpu": bool(flags & 1),
                    "recommended": bool(flags & 2),
                }
            )
    return out


def test_a_small_catalogue_keeps_a_plain_select_of_every_image():
    images = demo_images(POLICY)
    option = build_profile_list(VISION, images)[1]["profile_options"]["image"]
    assert "picker" not in option
    assert len(option["choices"]) == len([i for i in images if VISION.image_allowed(i.reference)])


def test_a_small_catalogues_choices_carry_framework_cuda_and_description():
    choices = build_profile_list(VISION, demo_images(POLICY))[0]["profile_options"]["image"][
        "choices"
    ]
    details = choices["harbor.local/vision/pytorch:2.4-cuda12.4"]["details"]
    assert details == "pytorch · CUDA 12.4 · torchvision, timm, albumentations"


def test_a_large_catalogue_gets_a_picker_on_every_profile():
    options = image_options()
    assert options["gpu"]["picker"]["gpu_only"] is True
    assert options["cpu"]["picker"]["gpu_only"] is False
    assert options["cpu"]["picker"]["count"] == len(BIG)


def test_every_profile_shares_one_catalogue_document():
    options = image_options()
    assert options["gpu"]["picker"]["catalogue"] is options["cpu"]["picker"]["catalogue"]


def test_the_page_carries_the_catalogue_once():
    html = render_form(build_profile_list(VISION, BIG))
    assert html.count('id="gpulab-image-catalogue"') == 1
    assert html.count('"r":[[') == 1


def test_the_page_at_5000_images_weighs_at_most_100_kib():
    html = render_form(build_profile_list(VISION, BIG))
    assert len(html.encode()) <= 100 * 1024


def test_the_select_without_javascript_holds_a_few_valid_images():
    options = image_options()
    for slug, option in options.items():
        offered = {i.reference for i in BIG if i.gpu or slug == "cpu"}
        assert 1 <= len(option["choices"]) <= FALLBACK_MAX
        assert set(option["choices"]) <= offered


def test_the_select_without_javascript_defaults_to_the_profiles_first_image():
    cpu = image_options()["cpu"]["choices"]
    assert [ref for ref, c in cpu.items() if c["default"]] == ["harbor.local/vision/repo-0:v0"]


def test_the_recent_image_is_selected_and_listed_first():
    recent = ["harbor.local/shared/repo-5:v7"]
    gpu = image_options(recent=recent)["gpu"]["choices"]
    assert next(iter(gpu)) == recent[0] and gpu[recent[0]]["default"] is True


def test_a_recent_image_the_profile_does_not_offer_is_not_selected_there():
    recent = ["harbor.local/vision/repo-0:v1"]  # a CPU image: not on the GPU profile
    gpu = image_options(recent=recent)["gpu"]["choices"]
    assert recent[0] not in gpu
    assert [ref for ref, c in gpu.items() if c["default"]] == ["harbor.local/shared/repo-1:v0"]


def test_recommended_images_are_in_the_select_without_javascript():
    gpu = image_options()["gpu"]["choices"]
    assert "harbor.local/shared/repo-3:v0" in gpu


def test_the_document_lists_every_allowed_image_in_catalogue_order():
    document = image_options()["cpu"]["picker"]["catalogue"]
    assert [i["reference"] for i in expand(document)] == [i.reference for i in BIG]


def test_the_document_keeps_each_images_metadata():
    document = image_options()["gpu"]["picker"]["catalogue"]
    by_ref = {i["reference"]: i for i in expand(document)}
    for img in (BIG[0], BIG[3 * 50 + 7]):
        got = by_ref[img.reference]
        assert (got["name"], got["project"], got["framework"], got["cuda"]) == (
            img.display_name,
            img.project,
            img.framework,
            img.cuda,
        )
        assert (got["description"], got["gpu"], got["recommended"]) == (
            img.description,
            img.gpu,
            img.recommended,
        )


def test_the_document_groups_a_repositorys_tags_into_one_run():
    document = image_options()["gpu"]["picker"]["catalogue"]
    assert len(json.loads(document)["r"]) == 100


def test_the_document_leaves_out_images_the_user_may_not_use():
    nlp_image = image_from_static({"image": "harbor.local/nlp/secret:1"})
    options = build_profile_list(VISION, [*BIG, nlp_image])[1]["profile_options"]["image"]
    refs = {i["reference"] for i in expand(options["picker"]["catalogue"])}
    assert nlp_image.reference not in refs and BIG[0].reference in refs


def test_the_document_names_the_users_recent_images():
    recent = ["harbor.local/shared/repo-5:v7", "harbor.local/vision/repo-0:v1"]
    document = image_options(recent=recent)["cpu"]["picker"]["catalogue"]
    assert json.loads(document)["recent"] == recent


def test_registry_text_cannot_close_the_documents_script_element():
    evil = image_from_static(
        {"image": "harbor.local/vision/x:1", "description": "</script><script>alert(1)</script>"}
    )
    document = catalogue_json([evil, *BIG[:30]])
    assert not re.search(r"</|<script", document)
    assert expand(document)[0]["description"] == "</script><script>alert(1)</script>"


def test_display_names_with_the_tag_in_brackets_survive_the_runs():
    images = [
        Image(
            reference=f"harbor.local/vision/torch:{t}",
            project="vision",
            repository="torch",
            tag=t,
            digest=None,
            display_name=f"Torch [{t}]",
            framework="pytorch",
            cuda="12.4",
            gpu=True,
            description="",
        )
        for t in ("a", "b")
    ]
    assert [i["name"] for i in expand(catalogue_json(images))] == ["Torch [a]", "Torch [b]"]


def test_recent_images_are_newest_first_once_and_bounded():
    recent: list[str] = []
    for ref in ["a", "b", "a", *(f"x{n}" for n in range(10))]:
        recent = remember_recent(recent, ref)
    assert len(recent) == RECENT_MAX and recent[0] == "x9" and len(set(recent)) == len(recent)


def test_a_policy_static_image_may_be_recommended():
    policy = demo_policy(
        catalogue__static=[{"image": "harbor.local/shared/x:1", "recommended": True}]
    )
    assert image_from_static(policy.catalogue.static[0]).recommended


def test_the_spawner_keeps_recent_images_in_its_state_across_a_stop(offline_kubeconfig):
    import asyncio
    from types import SimpleNamespace

    from gpulab.spawner import GPULabSpawner

    async def state_after_stop() -> tuple[dict[str, Any], list[str]]:
        user = SimpleNamespace(name="ann", id=1, url="/user/ann/", groups=[], orm_user=None)
        spawner = GPULabSpawner(_mock=True, user=user)
        spawner.load_state({"gpulab_recent_images": ["a/b/c:1", "a/b/d:2"]})
        spawner.clear_state()  # JupyterHub, after a stop
        spawner.user_options = {"image": "a/b/e:3"}  # the last start's options
        return spawner.get_state(), spawner._recent()

    state, recent = asyncio.run(state_after_stop())
    assert state["gpulab_recent_images"] == ["a/b/c:1", "a/b/d:2"]
    assert recent == ["a/b/e:3", "a/b/c:1", "a/b/d:2"]
