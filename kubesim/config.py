"""kubesim configuration: the API server's address and files, and the simulated nodes."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class NodeConfig:
    name: str
    cpu: str = "16"
    memory: str = "64Gi"
    gpus: int = 4
    gpu_resource: str = "nvidia.com/gpu"
    gpu_product: str = "NVIDIA-A100-SXM4-80GB"
    # GPU slices the node advertises besides whole GPUs, resource -> count: MIG profiles
    # ({"nvidia.com/mig-1g.10gb": 7}) or time-sliced GPUs ({"nvidia.com/gpu.shared": 8}), as
    # the NVIDIA device plugin does. The scheduler binds against them like any resource.
    slices: dict[str, int] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, Any]] = field(default_factory=list)


def default_nodes(count: int = 2, gpus: int = 4) -> list[NodeConfig]:
    return [NodeConfig(name=f"kubesim-node-{i + 1}", gpus=gpus) for i in range(count)]


@dataclass
class KubesimConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0 = any free port
    data_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="kubesim-")))
    kubeconfig_path: Path | None = None  # default: data_dir / "kubeconfig"
    nodes: list[NodeConfig] = field(default_factory=default_nodes)
    history_window: int = 5000
    audit_log: Path | None = None
    bookmark_interval: float = 1.0
    # A kube-apiserver --token-auth-file: with it, requests need a bearer token and RBAC
    # decides; without it, every request is an unrestricted admin.
    token_auth_file: Path | None = None
    # A folder that keeps every API object (snapshot + journal): a restart on the same folder
    # resumes the cluster. None: objects live in memory only and end with the process.
    store_dir: Path | None = None
    # Serve Kueue's API (kueue.x-k8s.io) and run kubesim's Kueue (gpulab.kubesim.kueue).
    kueue: bool = False
    # Kueue's Configuration fairSharing (gpulab's documented Kueue set-up has it on).
    kueue_fair_sharing: bool = True
    # The CronJob controller's clock runs this many times faster than wall time (from
    # kubesim's start): 60 makes an hourly schedule fire every minute. Only that controller's
    # clock; everything else keeps wall time. 1 = real time.
    cron_clock_speed: float = 1.0

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if self.kubeconfig_path is None:
            self.kubeconfig_path = self.data_dir / "kubeconfig"
        self.kubeconfig_path = Path(self.kubeconfig_path)
        if self.token_auth_file is not None:
            self.token_auth_file = Path(self.token_auth_file)
        if self.store_dir is not None:
            self.store_dir = Path(self.store_dir)


def parse_nodes(spec: str) -> list[NodeConfig]:
    """``2x4`` (2 nodes with 4 GPUs each) or a YAML file with a list of NodeConfig fields."""
    if m := re.fullmatch(r"(\d+)x(\d+)", spec.strip()):
        return default_nodes(int(m.group(1)), int(m.group(2)))
    import yaml  # only needed for a nodes file

    data = yaml.safe_load(Path(spec).read_text())
    if isinstance(data, dict):
        data = data.get("nodes", [])
    if not isinstance(data, list) or not data:
        raise ValueError(f"{spec}: expected a list of nodes (name, cpu, memory, gpus, ...)")
    return [NodeConfig(**item) for item in data]
