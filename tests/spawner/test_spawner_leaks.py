"""Profiles never leak into each other; limits merge; group caps win (issue #7).

Each test builds the pod manifest in-process (no Kubernetes call). The first test reproduces
the bug with stock KubeSpawner (kubespawner#546, jupyterhub#3592): its ``_load_profile``
``setattr``s/merges overrides into the spawner's traits, and the Spawner object is reused for
the next start. GPULabSpawner resets what it manages in ``clear_state`` (which JupyterHub
calls before every start) and finishes the pod from the plan in ``modify_pod_hook``.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from gpulab.spawner import spawner as gspawner
from gpulab.spawner.checks import GpuUsage
from gpulab.spawner.form import GpuTypeAvailability
from kubespawner import KubeSpawner
from spawner_testlib import DEMO_POLICY, demo_images

GPU_SELECTOR = {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
STOCK_PROFILES = [
    {
        "display_name": "GPU",
        "slug": "gpu",
        "kubespawner_override": {
            "extra_resource_limits": {"nvidia.com/gpu": "2"},
            "node_selector": GPU_SELECTOR,
        },
    },
    {"display_name": "CPU", "slug": "cpu", "default": True},
]


def user(name="alice", groups=("vision",)):
    return SimpleNamespace(
        name=name,
        id=1,
        url=f"/user/{name}/",
        groups=[SimpleNamespace(name=g) for g in groups],
        settings={"base_url": "/"},
        orm_user=None,
    )


class FakeCatalogue:
    """A test double of gpulab.hub.catalogue.Catalogue (the contract's images())."""

    def __init__(self, images):
        self._images = images
        self.calls = 0

    async def images(self):
        self.calls += 1
        return self._images

    async def start(self):
        pass

    async def stop(self):
        pass


class FakeView:
    def __init__(self, usage=GpuUsage(0, 0), availability=None):
        self._usage = usage
        self._availability = availability

    def usage(self, user_label, group):
        return self._usage

    def availability(self, gpu_types):
        return self._availability

    def holds(self, entry):
        return True


class FakeHomes:
    """A test double of gpulab.hub.homes.Homes: a pending deletion per user."""

    def __init__(self, marked=()):
        self.marked = set(marked)
        self.cancelled = []

    async def cancel_deletion(self, user):
        if user in self.marked:
            self.marked.discard(user)
            self.cancelled.append(user)
            return True
        return False


class FakeLedger:
    """The quota ledger with no API server: the check against the view's usage, nothing kept."""

    async def reserve(self, group, kind, name, *, user, gpus, counted, seen, check, demand=None):
        return check(counted())

    async def release(self, group, kind, name):
        pass


class OfflineSpawner(gspawner.GPULabSpawner):
    """GPULabSpawner with the cluster view, the homes and the quota ledger replaced by test
    doubles (no API calls)."""

    fake_view = FakeView()
    fake_homes = FakeHomes()

    async def _cluster(self):
        return self.fake_view

    def _homes(self, policy):
        return self.fake_homes

    def _quota_ledger(self):
        return FakeLedger()


@pytest.fixture
def policy_path(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(DEMO_POLICY.read_text())
    state = gspawner.hub_state(str(path))
    state.catalogue = FakeCatalogue(demo_images(state.policy))
    state.catalogue_key = state.policy.catalogue
    state.started = True
    yield str(path)
    gspawner._states.pop(str(path), None)


def make(policy_path, cls=OfflineSpawner, **config):
    return cls(_mock=True, user=user(**config.pop("user", {})), policy_path=policy_path, **config)


async def start_options(spawner, options):
    """What JupyterHub does for a start, up to the pod manifest (user.spawn + _start)."""
    spawner.user_options = options
    spawner.clear_state()
    await spawner.apply_group_overrides()
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    pod = spawner.modify_pod_hook(spawner, pod)
    spawner._reservation = None
    return pod


def as_dict(pod):
    from kubernetes_asyncio.client import ApiClient

    return ApiClient().sanitize_for_serialization(pod)


def limits(pod):
    return pod.spec.containers[0].resources.limits


# ----------------------------------------------------------------------------- leaks


async def test_stock_kubespawner_leaks_the_gpu_profile_into_the_next_start(offline_kubeconfig):
    spawner = KubeSpawner(_mock=True, profile_list=STOCK_PROFILES)
    spawner.user_options = {"profile": "gpu"}
    await spawner.load_user_options()
    spawner.clear_state()  # the server stopped (or its spawn failed/was cancelled)
    spawner.user_options = {"profile": "cpu"}
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    assert limits(pod).get("nvidia.com/gpu") == "2"  # the bug: a CPU pod asking for GPUs
    assert pod.spec.node_selector == GPU_SELECTOR


async def test_gpulab_spawner_does_not_leak_the_gpu_profile(offline_kubeconfig, policy_path):
    spawner = make(policy_path)
    gpu_pod = await start_options(spawner, {"profile": "gpu", "gpus": "2"})
    assert limits(gpu_pod)["nvidia.com/gpu"] == "2"
    cpu_pod = await start_options(
        spawner, {"profile": "cpu", "image": "harbor.local/shared/scipy:2024.10"}
    )
    assert "nvidia.com/gpu" not in limits(cpu_pod)
    assert not cpu_pod.spec.node_selector
    assert not cpu_pod.spec.tolerations
    assert cpu_pod.metadata.labels["gpulab.io/gpus"] == "0"


async def test_a_refused_start_leaves_nothing_for_the_next(offline_kubeconfig, policy_path):
    spawner = make(policy_path)
    await start_options(spawner, {"profile": "gpu", "gpus": "2"})
    with pytest.raises(gspawner.SpawnRefused):
        await start_options(spawner, {"profile": "gpu", "gpus": "16"})
    pod = await start_options(spawner, {"profile": "cpu"})
    assert "nvidia.com/gpu" not in limits(pod)


# ----------------------------------------------------------------------------- merges and caps


async def test_configured_and_group_limits_merge_with_the_gpu_limit(
    offline_kubeconfig, policy_path
):
    spawner = make(
        policy_path,
        extra_resource_limits={"ephemeral-storage": "20Gi"},
        group_overrides={
            "fpga": {
                "groups": ["vision"],
                "spawner_override": {"extra_resource_limits": {"example.com/fpga": "1"}},
            }
        },
    )
    pod = await start_options(spawner, {"profile": "gpu", "gpus": "1"})
    assert {
        k: limits(pod)[k] for k in ("ephemeral-storage", "example.com/fpga", "nvidia.com/gpu")
    } == {
        "ephemeral-storage": "20Gi",
        "example.com/fpga": "1",
        "nvidia.com/gpu": "1",
    }


async def test_group_caps_win_over_group_overrides(offline_kubeconfig, policy_path):
    spawner = make(
        policy_path,
        group_overrides={
            "greedy": {
                "groups": ["vision"],
                "spawner_override": {
                    "extra_resource_limits": {"nvidia.com/gpu": "8"},
                    "cpu_limit": 64.0,
                    "extra_container_config": {
                        "securityContext": {"privileged": True, "runAsUser": 0}
                    },
                    "automount_service_account_token": True,
                },
            }
        },
    )
    pod = await start_options(spawner, {"profile": "gpu", "gpus": "2"})
    assert limits(pod)["nvidia.com/gpu"] == "2"
    assert limits(pod)["cpu"] == 4
    csc = pod.spec.containers[0].security_context
    assert csc["privileged"] is False and csc["runAsUser"] == 1000
    assert pod.spec.automount_service_account_token is False


# ----------------------------------------------------------------------------- the pod


async def test_the_pod_has_the_home_datasets_shm_and_security(offline_kubeconfig, policy_path):
    spawner = make(policy_path)
    pod = as_dict(await start_options(spawner, {"profile": "gpu", "gpus": "2"}))
    container = pod["spec"]["containers"][0]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert set(mounts) >= {"/home/jovyan", "/datasets/imagenet-mini", "/dev/shm"}
    assert mounts["/datasets/imagenet-mini"]["readOnly"] is True
    vols = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert vols["home"]["persistentVolumeClaim"]["claimName"] == "home-alice"
    assert vols["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["fsGroup"] == 100
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert spawner.pvc_name == "home-alice" and spawner.delete_pvc is False
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GPULAB_IMAGE"] == spawner.image and env["GPULAB_GPUS"] == "2"


async def test_starting_a_server_cancels_a_pending_home_deletion(offline_kubeconfig, policy_path):
    spawner = make(policy_path)
    spawner.fake_homes = FakeHomes(marked={"alice"})
    await start_options(spawner, {"profile": "cpu"})
    assert spawner.fake_homes.cancelled == ["alice"] and not spawner.fake_homes.marked


async def test_the_home_claim_carries_the_home_labels(offline_kubeconfig, policy_path):
    spawner = make(policy_path)
    await start_options(spawner, {"profile": "cpu"})
    pvc = spawner.get_pvc_manifest()
    assert pvc.metadata.name == spawner.pvc_name == "home-alice"
    assert pvc.metadata.labels == {
        "app.kubernetes.io/name": "gpulab",
        "app.kubernetes.io/component": "home",
        "app.kubernetes.io/managed-by": "gpulab",
        "gpulab.io/user": "alice",
    }
    assert pvc.spec.storage_class_name == "cephfs" and pvc.spec.access_modes == ["ReadWriteMany"]


async def test_quota_in_use_refuses_the_start(offline_kubeconfig, policy_path):
    spawner = make(policy_path)
    spawner.fake_view = FakeView(GpuUsage(user=3, group=3))
    with pytest.raises(gspawner.SpawnRefused) as info:
        await start_options(spawner, {"profile": "gpu", "gpus": "2"})
    assert info.value.status_code == 403
    assert "you already use 3 of your 4 GPUs" in str(info.value)


async def test_named_servers_follow_the_policy(offline_kubeconfig, policy_path):
    spawner = make(
        policy_path,
        user={"name": "bob", "groups": ("nlp",)},
        orm_spawner=SimpleNamespace(name="second", server=None, user_options=None),
    )
    with pytest.raises(gspawner.SpawnRefused, match="named servers are not enabled"):
        await start_options(spawner, {"profile": "cpu"})


async def test_the_form_renders_with_gpulabs_template(offline_kubeconfig, policy_path):
    spawner = make(policy_path)
    html = await spawner.get_options_form()
    if callable(html):
        html = await html(spawner)
    assert 'id="profile-item-gpu"' in html and 'id="profile-item-cpu"' in html
    assert '<option value="2" >2 GPUs (a100)</option>' in html
    assert "<h3>GPU notebook</h3>" in html
    assert "harbor.local/nlp/" not in html


async def test_sizes_that_cannot_run_are_disabled_in_the_rendered_html(
    offline_kubeconfig, policy_path
):
    spawner = make(policy_path)
    avail = GpuTypeAvailability("a100", 8, 1, 1, 2, max_on_node=1)
    spawner.fake_view = FakeView(availability={"a100": avail})
    html = await spawner.get_options_form()
    if callable(html):
        html = await html(spawner)
    gpus = html.split('id="profile-option-gpu--gpus"')[1].split("</select>")[0]
    reason = "no a100 node has 2 GPUs"
    assert f'<option value="2" disabled title="{reason}">' in gpus
    assert '<option value="1" selected>' in gpus
    assert "disabled" not in html.split('id="profile-option-cpu--image"')[1].split("</select>")[0]
    assert "a100</strong>: 1 of 8 GPUs free" in html


async def test_the_form_is_refused_for_a_tampered_image(offline_kubeconfig, policy_path):
    spawner = make(policy_path)
    form = {
        "profile": ["gpu"],
        "profile-option-gpu--image": ["harbor.local/nlp/pytorch:2.4-cuda12.4"],
        "profile-option-gpu--gpus": ["1"],
    }
    with pytest.raises(gspawner.SpawnRefused, match="is not allowed for your groups"):
        await spawner.run_options_from_form(form)
