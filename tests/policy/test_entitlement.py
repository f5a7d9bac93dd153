"""The merge of a user's groups (docs/policy.md, "A user in several groups")."""

from __future__ import annotations

from gpulab.hub.policy import parse_policy


def names(ent):
    return [(p.name, p.gpus) for p in ent.profiles]


def test_single_group_profiles_capped_at_per_server(base):
    ent = parse_policy(base).entitlement(["vision"])
    assert names(ent) == [("gpu", (1, 2, 4)), ("cpu", ())]


def test_single_group_keeps_its_own_profile_order(base):
    ent = parse_policy(base).entitlement(["nlp"])
    assert names(ent) == [("cpu", ()), ("gpu-small", (1,))]


def test_numeric_limits_are_the_most_generous(base):
    ent = parse_policy(base).entitlement(["nlp", "vision"])
    assert (ent.gpu_per_server, ent.gpu_per_job, ent.gpu_quota_user) == (4, 8, 8)
    assert ent.max_job_runtime_seconds == 48 * 3600


def test_quota_group_is_the_first_group_in_policy_order(base):
    ent = parse_policy(base).entitlement(["nlp", "vision"])
    assert ent.groups == ("vision", "nlp")
    assert ent.quota_group == "vision"
    assert ent.gpu_quota_group == {"vision": 16, "nlp": 4}
    assert ent.quota_group_limit == 16


def test_profiles_gpu_types_and_images_are_united(base):
    ent = parse_policy(base).entitlement(["nlp", "vision"])
    assert names(ent) == [("gpu", (1, 2, 4)), ("cpu", ()), ("gpu-small", (1, 2))]
    assert ent.gpu_types == {"a100", "t4"}
    assert ent.image_projects == {"vision", "nlp", "shared"}


def test_idle_rules_take_the_most_generous_value(base):
    ent = parse_policy(base).entitlement(["vision", "nlp"])
    assert ent.idle.timeout_seconds == 3600  # the longer timeout
    assert ent.idle.gpu_threshold == 5  # the lower threshold culls less
    assert ent.kernels.action == "warn"  # warn is gentler than shutdown


def test_zero_duration_means_off_and_wins_the_merge(base):
    base["groups"]["nlp"]["idle"]["timeout"] = 0
    ent = parse_policy(base).entitlement(["vision", "nlp"])
    assert ent.idle.timeout_seconds == 0


def test_unconfigured_groups_are_ignored(base):
    ent = parse_policy(base).entitlement(["nlp", "marketing"])
    assert ent.groups == ("nlp",)


def test_user_in_no_group_gets_the_default_group(base):
    ent = parse_policy(base).entitlement(["marketing"])
    assert ent.groups == ("default",)
    assert ent.quota_group == "default"
    assert names(ent) == [("cpu", ())]
    assert ent.gpu_per_server == 0


def test_no_default_group_means_no_access(base):
    base["default_group"] = None
    assert parse_policy(base).entitlement([]) is None


def test_gpu_profile_keeps_only_choices_within_the_cap(base):
    base["profiles"]["gpu"]["gpus"] = [2, 4, 8]
    base["groups"]["vision"]["gpu"].update(per_server=3)
    ent = parse_policy(base).entitlement(["vision"])
    assert ent.profile("gpu").gpus == (2,)


def test_merged_per_server_applies_to_every_profile_of_the_user(base):
    base["groups"]["vision"]["gpu"].update(per_server=1, per_job=1)
    base["profiles"]["gpu"]["gpus"] = [1, 2]
    base["profiles"]["gpu-small"]["gpus"] = [2]
    base["groups"]["nlp"]["gpu"].update(per_server=2)
    policy = parse_policy(base)
    assert names(policy.entitlement(["vision"])) == [("gpu", (1,)), ("cpu", ())]
    # merged per_server is 2 (nlp's), and it caps every GPU profile the user has:
    assert names(policy.entitlement(["vision", "nlp"])) == [
        ("gpu", (1, 2)),
        ("cpu", ()),
        ("gpu-small", (2,)),
    ]


def test_profile_capped_returns_none_when_every_choice_exceeds(base):
    profile = parse_policy(base).profiles["gpu-small"]
    assert profile.capped(0) is None
    assert profile.capped(1).gpus == (1,)


def test_default_profile_is_the_one_marked_default(base):
    ent = parse_policy(base).entitlement(["nlp", "vision"])
    assert ent.default_profile.name == "gpu"


def test_the_contact_is_the_platforms_unless_a_group_names_its_own(base):
    base["platform"] = {"contact": "the platform team"}
    base["groups"]["nlp"]["contact"] = "nlp-leads@example.org"
    policy = parse_policy(base)
    assert policy.entitlement(["vision"]).contact == "the platform team"
    assert policy.entitlement(["vision", "nlp"]).contact == "nlp-leads@example.org"


def test_no_contact_anywhere_is_empty(base):
    assert parse_policy(base).entitlement(["vision"]).contact == ""
