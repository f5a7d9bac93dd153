"""RBAC: on the session platform kubesim serves the culler with its own token, bound only by
helm-values/manifests/rbac-culler.yaml. Runs after test_platform_cull.py (file name): every
call the culler made there (usage recording's pod watch, node capacity) is one kubesim's RBAC
allows (a SelfSubjectAccessReview with its token), and each is granted by the file
(tests/ship/rbac.py's ``rules_cover``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gpulab.kube_identities import CULLER  # noqa: E402
from tests.ship.rbac import load_audit, load_role_rules, not_allowed, rules_cover  # noqa: E402

pytestmark = [pytest.mark.e2e]

ROLE_FILE = ROOT / "helm-values" / "manifests" / "rbac-culler.yaml"


def test_the_cullers_calls_are_allowed_and_granted_by_its_manifest(platform):
    calls = load_audit(platform.state_dir / "kubesim-audit.jsonl", user_agent="gpulab-culler")
    assert calls, "no culler calls recorded"
    with platform.kube_client(CULLER) as kube:
        refused = not_allowed(kube, calls)
    assert not refused, f"kubesim's RBAC does not allow the culler's {refused}"
    namespaced = [c for c in calls if c.namespace]
    missing, _ = rules_cover(load_role_rules(ROLE_FILE, "gpulab-culler"), namespaced)
    assert not missing, f"rbac-culler.yaml's Role lacks {missing}"
    cluster = [c for c in calls if not c.namespace]
    missing, _ = rules_cover(load_role_rules(ROLE_FILE, "gpulab-culler-nodes"), cluster)
    assert not missing, f"rbac-culler.yaml's ClusterRole lacks {missing}"
