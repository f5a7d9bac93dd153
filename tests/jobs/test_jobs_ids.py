"""Job ids and idempotency keys."""

from __future__ import annotations

import pytest
from gpulab.hub.jobs.ids import is_job_id, new_job_id, submit_key, valid_idempotency_key
from gpulab.hub.names import is_dns_label, is_label_value


def test_job_ids_are_short_dns_labels_and_unique():
    ids = {new_job_id("train") for _ in range(2000)}
    assert len(ids) == 2000
    for job_id in list(ids)[:50]:
        assert is_job_id(job_id) and is_dns_label(job_id)
        assert job_id.startswith("train-") and len(job_id) == len("train-") + 6
    longest = new_job_id("a" * 40)
    assert is_job_id(longest) and len(longest) == 47


@pytest.mark.parametrize("bad", ["Train", "", "a" * 41, "x_y", "-x", "x-"])
def test_new_job_id_refuses_bad_names(bad):
    with pytest.raises(ValueError):
        new_job_id(bad)


@pytest.mark.parametrize(
    "bad", ["train", "train-ABCDEF", "../x-aaaaaa", "x-aaaaa1", "x/y-aaaaaa", 3, None]
)
def test_is_job_id_refuses_other_strings(bad):
    assert not is_job_id(bad)


def test_submit_keys_depend_on_owner_and_key():
    a = submit_key("alice", "k-1")
    assert a == submit_key("alice", "k-1")
    assert a != submit_key("bob", "k-1") and a != submit_key("alice", "k-2")
    assert is_label_value(a) and len(a) == 40
    assert valid_idempotency_key("0f4e-uuid-like")
    for bad in ["", "has space", "x" * 256, "é", "a\nb"]:
        assert not valid_idempotency_key(bad)
        with pytest.raises(ValueError):
            submit_key("alice", bad)
