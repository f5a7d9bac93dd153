"""Fixtures for the pure job modules: a policy with a Harbor catalogue, GPUs and datasets."""

from __future__ import annotations

import pytest
from gpulab.hub.policy import parse_policy
from jobs_testlib import POLICY_YAML


@pytest.fixture(scope="session")
def policy():
    return parse_policy(POLICY_YAML)


@pytest.fixture(scope="session")
def vision(policy):
    return policy.entitlement(["vision"])


@pytest.fixture(scope="session")
def default_ent(policy):
    return policy.entitlement([])


@pytest.fixture(scope="session")
def multi(policy):
    return policy.entitlement(["multi"])
