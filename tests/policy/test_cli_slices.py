"""`gpulab admin check-policy` on GPU slices and `gpulab admin kueue render`, run as the
installed command."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.policy.test_cli import gpulab


def _with_slices(tmp_path: Path, base: dict, resource: str) -> Path:
    base["gpu_types"]["a100-1g"] = {
        "resource": resource,
        "label": "1/7 A100, 10 GB",
        "max_per_node": 7,
    }
    base["gpu_types"]["a100-shared"] = {"resource": "nvidia.com/gpu.shared"}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(base, sort_keys=False))
    return path


def test_check_policy_accepts_mig_and_time_sliced_resources(tmp_path, base):
    result = gpulab(
        "admin", "check-policy", str(_with_slices(tmp_path, base, "nvidia.com/mig-1g.10gb"))
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "a100-1g (1/7 A100, 10 GB): nvidia.com/mig-1g.10gb, at most 7 per node" in result.stdout
    assert "a100-shared: nvidia.com/gpu.shared" in result.stdout


def test_check_policy_refuses_an_invalid_resource_with_its_field_path(tmp_path, base):
    result = gpulab("admin", "check-policy", str(_with_slices(tmp_path, base, "nvidia.com/mig 1g")))
    assert result.returncode == 1
    assert result.stdout.startswith(
        "gpu_types.a100-1g.resource: 'nvidia.com/mig 1g': 'mig 1g' is not a resource name"
    )


def test_kueue_render_prints_the_objects_and_a_users_queues(demo_path):
    result = gpulab(
        "admin", "kueue", "render", str(demo_path), "--user", "alice", "--group", "vision"
    )
    assert result.returncode == 0, result.stderr
    docs = list(yaml.safe_load_all(result.stdout))
    assert {"ResourceFlavor", "Cohort", "ClusterQueue", "LocalQueue", "WorkloadPriorityClass"} == {
        d["kind"] for d in docs
    }
    assert any(d["metadata"]["name"] == "gpulab-vision-alice" for d in docs)
