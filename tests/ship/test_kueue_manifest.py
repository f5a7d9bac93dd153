"""The Kueue objects gpulab renders validate against the upstream Kueue CRDs, and
helm-values/manifests/kueue.yaml is the demo policy's rendering."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from gpulab.hub.admin.kueue import header, render_yaml
from gpulab.hub.kueue.render import render_policy, render_user
from gpulab.hub.policy import load_policy

from tests.kueue.kueue_policies import policy
from tests.ship.k8s_schema import kueue_crd_schemas, object_problems, validate_object

ROOT = Path(__file__).resolve().parents[2]
DEMO = "hub/demo/policy.yaml"
KUEUE_YAML = ROOT / "helm-values" / "manifests" / "kueue.yaml"
KINDS = ("ResourceFlavor", "ClusterQueue", "Cohort", "LocalQueue", "WorkloadPriorityClass")


def _rendered() -> list[dict]:
    """The demo policy's objects and a user's queues in each of its groups, and the test
    policy's (GPU slices, lending and borrowing)."""
    demo = load_policy(ROOT / DEMO)
    objects = render_policy(demo, "gpulab")
    for group in demo.groups:
        objects += render_user(demo, f"user-of-{group}", group, "gpulab")
    sliced = policy()
    return objects + render_policy(sliced, "gpulab") + render_user(sliced, "a", "vision", "gpulab")


def test_the_upstream_schemas_of_every_kind_gpulab_writes_are_loaded() -> None:
    schemas = kueue_crd_schemas()
    assert {("kueue.x-k8s.io/v1beta2", kind) for kind in KINDS} <= set(schemas)


@pytest.mark.parametrize("obj", _rendered(), ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_every_rendered_object_validates_against_the_upstream_crd(obj: dict) -> None:
    validate_object(obj, require_namespace=True)


def test_the_v1beta1_field_name_is_refused_in_v1beta2() -> None:
    cq = copy.deepcopy(render_user(policy(), "a", "vision", "gpulab")[0])
    cq["spec"]["cohort"] = cq["spec"].pop("cohortName")
    assert any("'cohort' was unexpected" in p for p in object_problems(cq))


def test_a_quota_that_is_not_a_quantity_is_refused() -> None:
    cq = copy.deepcopy(render_user(policy(), "a", "vision", "gpulab")[0])
    cq["spec"]["resourceGroups"][0]["flavors"][0]["resources"][0]["nominalQuota"] = "lots"
    assert any("nominalQuota" in p for p in object_problems(cq))


def test_borrowing_without_a_cohort_is_refused() -> None:
    cq = copy.deepcopy(render_user(policy(), "a", "vision", "gpulab")[0])
    del cq["spec"]["cohortName"]
    assert any("borrowingLimit must be nil" in p for p in object_problems(cq))


def test_the_committed_kueue_yaml_is_the_demo_policys_rendering() -> None:
    expected = header(DEMO, "gpulab") + render_yaml(str(ROOT / DEMO), "gpulab", None, None)
    assert KUEUE_YAML.read_text() == expected, (
        "regenerate: gpulab admin kueue render hub/demo/policy.yaml --namespace gpulab "
        "> helm-values/manifests/kueue.yaml"
    )
