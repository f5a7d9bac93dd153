"""Shared constants of the job tests (a policy with Harbor, GPUs and datasets; an image)."""

POLICY_YAML = """
version: 1
default_group: default
groups:
  vision:
    images: {projects: [vision, shared]}
    profiles: [gpu, cpu]
    gpu: {types: [a100], per_server: 2, per_job: 4, quota_user: 4, quota_group: 8}
    jobs: {max_runtime: 24h, ttl_after_finished: 7d, max_retries: 3, max_concurrent: 3, max_nodes: 4}
  multi:
    images: {projects: [shared]}
    profiles: [cpu]
    gpu: {types: [a100, t4], per_server: 1, per_job: 2, quota_user: 2, quota_group: 2}
  default:
    images: {projects: [shared]}
    profiles: [cpu]
    jobs: {max_runtime: 2h, max_concurrent: 2, max_retries: 0}
profiles:
  gpu:
    gpu_type: a100
    gpus: [1, 2]
    cpu: {guarantee: 1, limit: 4}
    memory: {guarantee: 2Gi, limit: 16Gi}
    shm_size: 2Gi
  cpu:
    cpu: {guarantee: 500m, limit: 2}
    memory: {guarantee: 1Gi, limit: 4Gi}
gpu_types:
  a100:
    resource: nvidia.com/gpu
    node_selector: {nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB}
    tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
    max_per_node: 4
  t4:
    resource: nvidia.com/gpu
    node_selector: {nvidia.com/gpu.product: Tesla-T4}
    max_per_node: 1
storage:
  home: {mount_path: /home/jovyan, claim_name_template: "home-{username}"}
  datasets:
    - {name: imagenet, claim: dataset-imagenet, mount_path: /datasets/imagenet}
    - {name: coco, claim: dataset-coco, mount_path: /datasets/coco}
catalogue:
  source: harbor
  harbor: {url: https://harbor.example.org, projects: [vision, shared], pull_secret: harbor-pull}
"""

IMAGE = "harbor.example.org/vision/pytorch:2.4"
