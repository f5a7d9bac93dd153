from __future__ import annotations

import pytest
from gpulab.hub.policy import parse_image_ref, parse_policy


@pytest.fixture
def vision(base):
    return parse_policy(base).entitlement(["vision"])


def test_image_in_an_allowed_project(vision):
    assert vision.image_allowed("harbor.local/vision/pytorch:2.4")


def test_image_in_another_project_is_refused(vision):
    assert not vision.image_allowed("harbor.local/nlp/pytorch:2.4")


def test_nested_repository_uses_the_first_segment_as_project(vision):
    assert vision.image_allowed("harbor.local/shared/team/base:1")


def test_allowed_project_on_another_registry_is_refused(vision):
    assert not vision.image_allowed("evil.example.com/vision/pytorch:2.4")


def test_pattern_matches_the_full_reference(vision):
    assert vision.image_allowed("harbor.local/extra/anything:7")


def test_bare_reference_means_latest(vision):
    assert vision.image_allowed("harbor.local/vision/pytorch")
    assert parse_image_ref("harbor.local/vision/pytorch").tag == "latest"


def test_digest_reference_is_allowed_by_project(vision):
    assert vision.image_allowed("harbor.local/vision/pytorch@sha256:" + "a" * 64)


@pytest.mark.parametrize(
    "ref", ["", " harbor.local/vision/x:1", "harbor.local/Vision/x:1", "harbor.local/vision/x:b@d"]
)
def test_malformed_reference_is_refused(vision, ref):
    assert not vision.image_allowed(ref)


def test_docker_hub_short_names_are_not_a_project_match(vision):
    assert not vision.image_allowed("vision")  # docker.io/library/vision


def test_parse_image_ref_with_port_and_digest():
    ref = parse_image_ref("harbor.local:8443/nlp/bert:1.0@sha256:" + "b" * 64)
    assert (ref.registry, ref.project, ref.name, ref.tag) == (
        "harbor.local:8443",
        "nlp",
        "bert",
        "1.0",
    )
