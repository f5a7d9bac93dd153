"""The names of gpulab's Kueue objects: the contract's names, valid and apart."""

from __future__ import annotations

from gpulab.hub.kueue import names
from gpulab.hub.names import is_dns_label, is_dns_subdomain, is_label_value


def test_names_follow_the_contract() -> None:
    queues = names.user_queue_names("alice", "vision")
    assert queues.local_queue == "alice"
    assert queues.preemptible_local_queue == "alice-preemptible"
    assert queues.cluster_queue == "gpulab-vision-alice"
    assert queues.cohort == "gpulab-vision"
    assert names.gpu_flavor("a100") == "gpu-a100"


def test_a_user_named_borrow_does_not_take_the_groups_borrow_queue() -> None:
    assert names.user_cluster_queue("vision", "borrow") != names.borrow_cluster_queue("vision")


def test_a_user_named_like_anothers_preemptible_queue_gets_another_queue() -> None:
    taken = names.preemptible_local_queue("bob")
    assert names.user_local_queue("bob-preemptible") != taken


def test_policy_names_that_are_not_dns_labels_become_valid_distinct_names() -> None:
    upper, lower = names.group_cohort("ML_Team"), names.group_cohort("ml_team")
    assert upper != lower
    assert is_dns_subdomain(upper) and is_dns_subdomain(names.gpu_flavor("A100.80GB"))


def test_local_queue_names_of_long_usernames_are_label_values() -> None:
    user = "a-very-long-name." * 6
    for name in (names.user_local_queue(user), names.preemptible_local_queue(user)):
        assert is_label_value(name) and is_dns_label(name)
