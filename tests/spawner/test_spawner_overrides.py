"""Pure pod plans: resources, placement, storage, security, labels, env, merges and caps."""

from __future__ import annotations

from gpulab.hub.names import escape_username
from gpulab.spawner.overrides import (
    build_pod_plan,
    deep_merge,
    enforce_plan_on_container,
    finish_pod,
    merge_resources,
)
from kubernetes_asyncio.client import (
    V1Container,
    V1ObjectMeta,
    V1Pod,
    V1PodSpec,
    V1ResourceRequirements,
)
from spawner_testlib import demo_policy


def plan_for(groups=("vision",), profile="gpu", gpus=2, image=None, policy=None, **kw):
    policy = policy or demo_policy()
    ent = policy.entitlement(list(groups))
    prof = ent.profile(profile)
    return build_pod_plan(
        policy=policy,
        entitlement=ent,
        profile=prof,
        image=image or "harbor.local/vision/pytorch:2.4-cuda12.4",
        gpus=gpus,
        username=kw.pop("username", "alice"),
        **kw,
    )


def test_gpu_plan_sets_the_gpu_limit_of_the_type_resource():
    assert plan_for(gpus=2).extra_resource_limits == {"nvidia.com/gpu": "2"}


def test_gpu_plan_places_the_pod_on_the_gpu_type_nodes():
    plan = plan_for()
    assert plan.parts.gpu.node_selector == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert plan.parts.gpu.tolerations == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]


def test_cpu_plan_has_no_gpu_limit_and_no_gpu_placement():
    plan = plan_for(profile="cpu", gpus=0, image="harbor.local/shared/scipy:2024.10")
    assert plan.extra_resource_limits == {}
    assert plan.parts.gpu.node_selector == {} and plan.parts.gpu.tolerations == []
    assert plan.parts.gpu.gpu_type is None and plan.parts.labels["gpulab.io/gpus"] == "0"


def test_cpu_and_memory_come_from_the_profile():
    plan = plan_for()
    assert (plan.cpu_guarantee, plan.cpu_limit) == (1, 4)
    assert (plan.mem_guarantee, plan.mem_limit) == (2 * 2**30, 16 * 2**30)


def test_home_is_the_users_claim_mounted_at_the_home_path():
    plan = plan_for(username="bob.smith")
    assert plan.parts.home.name == "home-bob-2esmith"
    assert (
        plan.parts.home.storage_class == "cephfs" and plan.parts.home.access_mode == "ReadWriteMany"
    )
    assert {"name": "home", "persistentVolumeClaim": {"claimName": "home-bob-2esmith"}} in (
        plan.parts.volumes
    )
    assert {"name": "home", "mountPath": "/home/jovyan"} in plan.parts.volume_mounts


def test_datasets_are_mounted_read_only():
    plan = plan_for()
    vol = next(v for v in plan.parts.volumes if v["name"] == "dataset-imagenet-mini")
    mount = next(m for m in plan.parts.volume_mounts if m["name"] == "dataset-imagenet-mini")
    assert vol["persistentVolumeClaim"] == {"claimName": "dataset-imagenet-mini", "readOnly": True}
    assert mount == {
        "name": "dataset-imagenet-mini",
        "mountPath": "/datasets/imagenet-mini",
        "readOnly": True,
    }


def test_dev_shm_is_memory_backed_with_the_profile_size():
    policy = demo_policy(profiles__gpu__shm_size="8Gi")
    plan = plan_for(policy=policy)
    vol = next(v for v in plan.parts.volumes if v["name"] == "dshm")
    assert vol["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}
    assert {"name": "dshm", "mountPath": "/dev/shm"} in plan.parts.volume_mounts


def test_dev_shm_defaults_to_1gi_on_gpu_profiles_without_a_size():
    data_policy = demo_policy(profiles__gpu__shm_size=None)
    assert plan_for(policy=data_policy).parts.shm_size == "1Gi"


def test_security_context_is_restricted():
    plan = plan_for()
    assert plan.parts.pod_security_context == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 100,
        "fsGroup": 100,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    csc = plan.parts.container_security_context
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"] == {"drop": ["ALL"]}
    assert csc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert csc["runAsNonRoot"] is True and csc["runAsUser"] == 1000


def finished(plan):
    """A pod as KubeSpawner might build it (asking for a token), finished from ``plan``."""
    container = V1Container(name="notebook", resources=V1ResourceRequirements())
    spec = V1PodSpec(
        containers=[container], automount_service_account_token=True, service_account_name="x"
    )
    pod = V1Pod(metadata=V1ObjectMeta(labels={}), spec=spec)
    finish_pod(plan, pod, demo_policy())
    return pod


def test_no_service_account_token_is_mounted():
    pod = finished(plan_for())
    assert pod.spec.automount_service_account_token is False
    assert pod.spec.service_account_name is None


def test_labels_name_the_user_group_and_gpus():
    plan = plan_for(username="Alice", groups=("nlp", "vision"), gpus=1)
    assert plan.parts.labels == {
        "app.kubernetes.io/name": "gpulab",
        "app.kubernetes.io/component": "singleuser-server",
        "app.kubernetes.io/managed-by": "gpulab",
        "gpulab.io/user": escape_username("Alice"),
        "gpulab.io/group": "vision",  # first configured group in policy order
        "gpulab.io/gpus": "1",
        "gpulab.io/gpu-type": "a100",
    }


def test_plan_with_a_local_queue_joins_it_as_interactive_work():
    labels = plan_for(gpus=1, local_queue="alice").parts.labels
    assert labels["kueue.x-k8s.io/queue-name"] == "alice"
    assert labels["kueue.x-k8s.io/priority-class"] == "gpulab-interactive"


def test_plan_without_a_local_queue_has_no_kueue_label():
    assert not any(k.startswith("kueue.x-k8s.io/") for k in plan_for(gpus=1).parts.labels)


def test_env_gives_the_notebook_side_what_it_needs_and_no_secret():
    plan = plan_for(
        gateway_url="http://hub.example/services/jobs-gateway/",
        culler_url="http://hub.example/services/culler/",
    )
    assert plan.env["GPULAB_GATEWAY_URL"] == "http://hub.example/services/jobs-gateway/"
    assert plan.env["GPULAB_CULLER_URL"] == "http://hub.example/services/culler/"
    assert plan.env["GPULAB_IMAGE"] == "harbor.local/vision/pytorch:2.4-cuda12.4"
    assert plan.env["GPULAB_GPUS"] == "2"
    assert not any("KEY" in k or "TOKEN" in k or "SECRET" in k for k in plan.env)


def test_pull_secret_comes_from_the_harbor_catalogue():
    policy = demo_policy(
        catalogue__source="harbor",
        catalogue__harbor={"url": "https://harbor.local", "pull_secret": "harbor-pull"},
    )
    assert plan_for(policy=policy).parts.image_pull_secrets == ["harbor-pull"]


def test_static_catalogue_needs_no_pull_secret():
    assert plan_for().parts.image_pull_secrets == []


def test_deep_merge_merges_nested_dicts_per_key():
    assert deep_merge({"a": {"x": 1}, "b": 1}, {"a": {"y": 2}}) == {"a": {"x": 1, "y": 2}, "b": 1}


def test_deep_merge_none_removes_a_key_and_inputs_stay_unchanged():
    first = {"a": {"x": 1}, "b": 2}
    assert deep_merge(first, {"b": None}) == {"a": {"x": 1}}
    assert first == {"a": {"x": 1}, "b": 2}


def test_resource_limits_from_two_options_merge_instead_of_overwriting():
    # kubespawner#637: the second option's extra_resource_limits replaced the first's.
    merged = merge_resources({"nvidia.com/gpu": 2}, {"ephemeral-storage": "20Gi"})
    assert merged == {"nvidia.com/gpu": "2", "ephemeral-storage": "20Gi"}


def test_plan_merges_configured_limits_with_the_gpu_limit():
    plan = plan_for(base_limits={"ephemeral-storage": "20Gi", "nvidia.com/gpu": "8"})
    assert plan.extra_resource_limits == {"ephemeral-storage": "20Gi", "nvidia.com/gpu": "2"}


def test_cap_lowers_a_group_override_asking_for_more_gpus():
    plan = plan_for(gpus=2)
    limits, requests, notes = enforce_plan_on_container(
        plan, {"nvidia.com/gpu": "8"}, {"nvidia.com/gpu": "8"}
    )
    assert limits["nvidia.com/gpu"] == "2" and requests["nvidia.com/gpu"] == "2"
    assert notes


def test_cap_removes_gpus_left_on_a_cpu_pod():
    plan = plan_for(profile="cpu", gpus=0, image="harbor.local/shared/scipy:2024.10")
    limits, _, _ = enforce_plan_on_container(plan, {"nvidia.com/gpu": "2", "cpu": 2}, {})
    assert "nvidia.com/gpu" not in limits


def test_cap_lowers_cpu_and_memory_to_the_profile_limits():
    plan = plan_for()
    limits, requests, _ = enforce_plan_on_container(
        plan, {"cpu": "64", "memory": "512Gi"}, {"cpu": "32000m", "memory": "1Gi"}
    )
    assert limits["cpu"] == 4 and limits["memory"] == 16 * 2**30
    assert requests["cpu"] == 4 and requests["memory"] == "1Gi"


def test_cap_keeps_smaller_values():
    plan = plan_for()
    limits, _, notes = enforce_plan_on_container(
        plan, {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "2"}, {}
    )
    assert limits == {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "2"} and notes == []
