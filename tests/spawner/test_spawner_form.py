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


def test_a_size_above_the_groups_cap_is_shown_disabled_with_the_cap():
    choices = gpu_choices(["vision"], policy_profiles=POLICY.profiles)
    assert list(choices) == ["1", "2", "4"]
    assert choices["4"]["disabled"] is True
    assert choices["4"]["reason"] == "above your group&#39;s limit of 2 per server"  # escaped


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


def avail_of(free_on_node: int, *, largest: int = 4, waiting: int = 0) -> dict:
    return {
        "a100": GpuTypeAvailability(
            "a100", total=8, free=free_on_node, max_free_on_node=free_on_node, nodes=2,
            max_on_node=largest, waiting=waiting,
        )
    }  # fmt: skip


def gpu_choices(groups, **kw):
    return profiles(groups, **kw)[0]["profile_options"]["gpus"]["choices"]


def test_a_size_larger_than_any_node_is_disabled_with_the_reason():
    choices = gpu_choices(["vision"], availability=avail_of(0, largest=1))
    assert choices["2"]["disabled"] is True
    assert choices["2"]["reason"] == "no a100 node has 2 GPUs"


def test_a_size_that_would_wait_for_gpus_stays_startable_and_says_how_many_wait():
    choices = gpu_choices(["vision"], availability=avail_of(1, waiting=3))
    assert "disabled" not in choices["2"]
    assert choices["2"]["note"] == "will wait for GPUs (about 3 ahead)"
    assert "unavailable" not in choices["2"]["display_name"]


def test_gpu_sizes_over_the_quota_left_are_disabled():
    quota = QuotaLeft(user_used=3, user_limit=4, group="vision", group_used=3, group_limit=8)
    choices = profiles(["vision"], quota=quota)[0]["profile_options"]["gpus"]["choices"]
    assert choices["2"]["reason"] == "over your GPU quota (1 left)"


def test_with_kueue_a_size_over_the_quota_left_waits_in_the_queue():
    quota = QuotaLeft(user_used=3, user_limit=4, group="vision", group_used=3, group_limit=8,
                      queued=True)  # fmt: skip
    choices = profiles(["vision"], quota=quota)[0]["profile_options"]["gpus"]["choices"]
    assert "disabled" not in choices["2"]
    assert choices["2"]["note"] == "will wait in the queue of vision (1 of the quota free now)"


def test_with_kueue_a_size_above_the_quota_itself_is_disabled():
    quota = QuotaLeft(user_used=0, user_limit=1, group="vision", group_used=0, group_limit=8,
                      queued=True)  # fmt: skip
    choices = profiles(["vision"], quota=quota)[0]["profile_options"]["gpus"]["choices"]
    assert choices["2"]["reason"] == "above your GPU quota of 1"


def test_with_kueue_a_used_up_quota_notice_says_the_server_will_wait():
    quota = QuotaLeft(user_used=4, user_limit=4, group="vision", group_used=4, group_limit=8,
                      queued=True)  # fmt: skip
    (notice,) = profiles(["vision"], quota=quota)[0]["notices"]
    assert notice.startswith(
        "Your GPU quota is in use now: a GPU server waits in the queue of vision"
    )


def test_the_default_gpu_choice_is_the_first_that_can_start():
    quota = QuotaLeft(user_used=3, user_limit=4, group="vision", group_used=3, group_limit=8)
    choices = gpu_choices(["vision"], availability=avail_of(0, largest=1), quota=quota)
    assert "default" not in choices["2"]  # over the quota
    choices = gpu_choices(["vision"], availability=avail_of(1))
    assert choices["1"]["default"] is True and "default" not in choices["2"]


def test_a_gpu_profile_that_cannot_start_is_not_preselected():
    quota = QuotaLeft(user_used=4, user_limit=4, group="vision", group_used=4, group_limit=8)
    gpu, cpu = profiles(["vision"], quota=quota)
    assert all(c.get("disabled") for c in gpu["profile_options"]["gpus"]["choices"].values())
    assert gpu["startable"] is False and "default" not in gpu
    assert gpu["reason"] == "no GPU size of this profile can start now"
    assert cpu["default"] is True


def test_a_cpu_only_user_is_told_their_group_and_whom_to_ask():
    (cpu,) = profiles([])
    assert cpu["notices"] == [
        "Your group default gives you CPU notebooks only: no GPUs. To use GPUs, ask the "
        "gpulab admins (gpulab-admins@example.org)."
    ]


def test_a_used_up_quota_notice_names_what_holds_it():
    quota = QuotaLeft(
        user_used=4, user_limit=4, group="vision", group_used=4, group_limit=8,
        held_by="your server alice/ holds 1, your job long-train holds 3",
    )  # fmt: skip
    (notice,) = profiles(["vision"], quota=quota)[0]["notices"]
    assert notice == (
        "No GPU server can start now: you already use all 4 GPUs of your quota (your server "
        "alice/ holds 1, your job long-train holds 3). Stop a server or a job to free GPUs."
    )


def test_availability_panel_shows_free_gpus_quota_and_disables_choices():
    avail = avail_of(1, largest=1)
    quota = QuotaLeft(
        user_used=0, user_limit=4, group="vision", group_used=2, group_limit=8,
        held_by="bob's job sweep holds 2",
    )  # fmt: skip
    plist = profiles(["vision"], availability=avail, quota=quota)
    html = render_form(plist)
    assert "1 of 8 GPUs free" in html
    assert "Your GPU quota: 4 of 4 left" in html and "6 of 8 left" in html
    assert "Held now by: bob&#39;s job sweep holds 2" in html
    gpus = html.split('id="profile-option-gpu--gpus"')[1].split("</select>")[0]
    assert '<option value="2" disabled title="no a100 node has 2 GPUs"' in gpus


def test_the_form_says_why_each_size_cannot_start_in_words():
    html = render_form(profiles(["vision"], policy_profiles=POLICY.profiles))
    reasons = html.split('id="profile-option-gpu--gpus-reasons"')[1].split("</ul>")[0]
    assert "<li>4 GPUs: above your group&#39;s limit of 2 per server</li>" in reasons


def test_the_form_checks_no_profile_that_cannot_start():
    quota = QuotaLeft(user_used=4, user_limit=4, group="vision", group_used=4, group_limit=8)
    html = render_form(profiles(["vision"], quota=quota), user_options={"profile": "gpu"})
    assert 'value="gpu" checked' not in html and 'value="cpu" checked' in html
    assert "Cannot start now: no GPU size of this profile can start now" in html


def test_a_cpu_only_users_form_shows_the_notice():
    html = render_form(profiles([]))
    assert 'id="gpulab-notices"' in html and "ask the gpulab admins" in html


def test_a_user_without_profiles_is_told_why():
    assert "Your groups give you no notebook profile" in render_form([])


def render_form(profile_list, user_options=None):
    """gpulab's form template rendered as KubeSpawner renders it (its loaders, no autoescape)."""
    loader = ChoiceLoader([FileSystemLoader(TEMPLATES), PackageLoader("kubespawner", "templates")])
    template = Environment(loader=loader).get_template("form.html")
    return template.render(profile_list=profile_list, user_options=user_options or {})
