"""The per-user profile list: groups' profiles only, allowed images, capped GPU choices."""

from __future__ import annotations

from gpulab.spawner.form import TEMPLATES, GpuTypeAvailability, QuotaLeft, build_profile_list
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader
from spawner_testlib import FakeImage, demo_images, demo_policy

POLICY = demo_policy()
IMAGES = demo_images(POLICY)


def profiles(groups, **kw):
    return build_profile_list(POLICY.entitlement(groups), IMAGES, **kw)


def test_a_group_sees_its_profiles_in_policy_order():
    assert [p["slug"] for p in profiles(["vision"])] == ["gpu", "cpu"]


def test_users_in_no_group_get_the_default_groups_cpu_profile_only():
    assert [p["slug"] for p in profiles([])] == ["cpu"]


def test_profiles_carry_display_name_description_and_one_default():
    gpu, cpu = profiles(["vision"])
    assert gpu["display_name"] == "GPU notebook" and gpu["default"] is True
    assert gpu["description"].startswith("JupyterLab with NVIDIA A100 GPUs (1–4 CPUs")
    assert "default" not in cpu


def test_gpu_profiles_offer_the_groups_gpu_images_only():
    gpu = profiles(["nlp"])[0]
    assert list(gpu["profile_options"]["image"]["choices"]) == [
        "harbor.local/nlp/pytorch:2.4-cuda12.4",
        "harbor.local/nlp/cuda:12.4-devel",
        "harbor.local/shared/pytorch:2.4-cuda12.4",
    ]


def test_cpu_profiles_offer_cpu_images_first():
    cpu = profiles(["vision"])[1]
    choices = list(cpu["profile_options"]["image"]["choices"])
    assert choices[0] == "harbor.local/shared/scipy:2024.10"
    assert "harbor.local/nlp/pytorch:2.4-cuda12.4" not in choices


def test_the_first_image_is_the_default_choice():
    choices = profiles(["vision"])[0]["profile_options"]["image"]["choices"]
    assert [k for k, c in choices.items() if c["default"]] == [next(iter(choices))]


def test_gpu_choices_are_capped_at_the_groups_per_server_limit():
    assert list(profiles(["vision"])[0]["profile_options"]["gpus"]["choices"]) == ["1", "2"]
    assert list(profiles(["nlp"])[0]["profile_options"]["gpus"]["choices"]) == ["1"]


def test_cpu_profiles_have_no_gpu_choice():
    assert "gpus" not in profiles(["vision"])[1]["profile_options"]


def test_display_strings_from_the_registry_are_escaped():
    evil = FakeImage("harbor.local/shared/x:1", display_name="<script>alert(1)</script>")
    out = build_profile_list(POLICY.entitlement(["vision"]), [evil])
    label = out[0]["profile_options"]["image"]["choices"]["harbor.local/shared/x:1"]
    assert "<script>" not in label["display_name"] and "&lt;script&gt;" in label["display_name"]


def test_a_profile_without_images_is_left_out():
    cpu_only = [i for i in IMAGES if not i.gpu]
    assert [p["slug"] for p in build_profile_list(POLICY.entitlement(["vision"]), cpu_only)] == [
        "cpu"
    ]


def test_gpu_sizes_that_do_not_fit_on_any_node_are_disabled_with_the_reason():
    avail = {"a100": GpuTypeAvailability("a100", total=8, free=1, max_free_on_node=1, nodes=2)}
    choices = profiles(["vision"], availability=avail)[0]["profile_options"]["gpus"]["choices"]
    assert "disabled" not in choices["1"] and choices["1"]["default"] is True
    assert choices["2"]["disabled"] is True
    assert choices["2"]["reason"] == "at most 1 a100 GPUs are free on one node right now"


def test_gpu_sizes_over_the_quota_left_are_disabled():
    quota = QuotaLeft(user_used=3, user_limit=4, group="vision", group_used=3, group_limit=8)
    choices = profiles(["vision"], quota=quota)[0]["profile_options"]["gpus"]["choices"]
    assert choices["2"]["reason"] == "over your GPU quota (1 left)"


def test_the_default_gpu_choice_moves_to_an_enabled_size():
    avail = {"a100": GpuTypeAvailability("a100", total=8, free=0, max_free_on_node=0, nodes=2)}
    choices = profiles(["vision"], availability=avail)[0]["profile_options"]["gpus"]["choices"]
    assert all(c.get("disabled") for c in choices.values())
    assert choices["1"]["default"] is True  # nothing fits: keep the smallest as default


def test_availability_panel_shows_free_gpus_quota_and_disables_choices():
    avail = {"a100": GpuTypeAvailability("a100", total=8, free=1, max_free_on_node=1, nodes=2)}
    quota = QuotaLeft(user_used=0, user_limit=4, group="vision", group_used=2, group_limit=8)
    plist = profiles(["vision"], availability=avail, quota=quota)
    html = render_form(plist)
    assert "1 of 8 GPUs free" in html
    assert "Your GPU quota: 4 of 4 left" in html and "6 of 8 left" in html
    gpus = html.split('id="profile-option-gpu--gpus"')[1].split("</select>")[0]
    assert '<option value="2" disabled title="at most 1 a100 GPUs' in gpus


def test_a_user_without_profiles_is_told_why():
    assert "Your groups give you no notebook profile" in render_form([])


def render_form(profile_list):
    """gpulab's form template rendered as KubeSpawner renders it (its loaders, no autoescape)."""
    loader = ChoiceLoader([FileSystemLoader(TEMPLATES), PackageLoader("kubespawner", "templates")])
    template = Environment(loader=loader).get_template("form.html")
    return template.render(profile_list=profile_list, user_options={})
