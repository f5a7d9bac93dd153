"""Simulated nodes can advertise GPU slices (MIG profiles, time-sliced GPUs) next to GPUs."""

from __future__ import annotations

from pathlib import Path

from gpulab.kubesim.config import NodeConfig, parse_nodes
from gpulab.kubesim.nodes import node_manifest


def test_a_node_advertises_its_slices_as_allocatable() -> None:
    node = NodeConfig(name="mig-1", gpus=1, slices={"nvidia.com/mig-1g.10gb": 7})
    allocatable = node_manifest(node)["status"]["allocatable"]
    assert allocatable["nvidia.com/mig-1g.10gb"] == "7"
    assert allocatable["nvidia.com/gpu"] == "1"


def test_a_nodes_file_can_give_slices(tmp_path: Path) -> None:
    path = tmp_path / "nodes.yaml"
    path.write_text("- {name: shared-1, gpus: 0, slices: {nvidia.com/gpu.shared: 8}}\n")
    (node,) = parse_nodes(str(path))
    assert node_manifest(node)["status"]["capacity"]["nvidia.com/gpu.shared"] == "8"
