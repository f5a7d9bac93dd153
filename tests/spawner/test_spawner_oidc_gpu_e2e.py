"""OIDC login and issue #7 end to end, on the spawner's own platform (``spawner_platform``:
kubesim 2 x 4 GPUs, JupyterHub configured by ``gpulab.hub.config.configure`` with OIDC from the
environment, the real proxy) and a real OIDC provider on loopback (``oidc_provider``).

Users log in through the provider's authorize page (plain HTTP: GET the hub's login, submit the
provider's form with a subject, follow the redirects back through ``/hub/oauth_callback``). The
group claim decides their JupyterHub groups (``manage_groups``) and so their profiles. The
cluster is filled with GPU pods created directly through the Kubernetes API.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.error
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from gpulab.hub.names import escape_username
from gpulab.hub.workload.security import CONTAINER_SECURITY_CONTEXT, POD_SECURITY_CONTEXT
from test_spawner_e2e import (
    CPU_IMG,
    NAMESPACE,
    NLP_IMG,
    VISION_IMG,
    get_pod,
    kubectl,
    pod_name,
    server_model,
    stop_server,
    wait_ready,
)

from gpulab.kube_identities import CHART_HUB_ROLE_RULES
from tests.ship.rbac import ApiCall, Permission, load_role_rules, rules_cover

pytestmark = pytest.mark.e2e

DEADLINE = 90  # seconds: a bound on waiting for something to happen, never a measurement


def until(what: str, check: Any, deadline: float = DEADLINE) -> Any:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {deadline}s")


# ----------------------------------------------------------------------------- login


def set_claims(provider: Any, sub: str, name: str, groups: list[str]) -> None:
    """Seed (or change) a subject at the provider: its username and group claims."""
    r = httpx.put(
        f"{provider.url}/users/{sub}",
        json={"preferred_username": name, "groups": groups},
        timeout=10,
    )
    assert r.status_code == 204, r.text


def oidc_login(platform: Any, sub: str) -> httpx.Client:
    """A browser session logged in through the provider as ``sub``."""
    client = httpx.Client(follow_redirects=True, timeout=60)
    page = client.get(f"{platform.hub_url}/hub/login")
    assert "Sign in with Test IdP" in page.text or "Test IdP" in page.text
    authorize = client.get(f"{platform.hub_url}/hub/oauth_login", params={"next": "/hub/home"})
    assert authorize.status_code == 200 and "Authorize Client" in authorize.text, authorize.text
    assert authorize.url.path == "/oauth2/authorize"
    # The provider's form posts back to the same URL (with the request's query).
    home = client.post(str(authorize.url), data={"sub": sub})
    assert home.status_code == 200 and home.url.path == "/hub/home", (home.url, home.text[:300])
    return client


def new_oidc_user(platform: Any, provider: Any, groups: list[str]) -> tuple[str, httpx.Client]:
    name = f"oi-{uuid.uuid4().hex[:6]}"
    set_claims(provider, f"sub-{name}", name, groups)
    return name, oidc_login(platform, f"sub-{name}")


def spawn_page(client: httpx.Client, platform: Any) -> str:
    r = client.get(f"{platform.hub_url}/hub/spawn")
    assert r.status_code == 200, r.status_code
    return r.text


def select(page: str, slug: str, option: str) -> str:
    return page.split(f'id="profile-option-{slug}--{option}"')[1].split("</select>")[0]


def test_oidc_claim_groups_decide_groups_and_profiles(spawner_platform, oidc_provider):
    platform = spawner_platform
    # nina: seeded at provider start (--user-claims) with groups [nlp]
    with contextlib.closing(oidc_login(platform, "sub-nina")) as nina:
        page = spawn_page(nina, platform)
    assert NLP_IMG in page and VISION_IMG not in page
    assert 'id="profile-item-gpu"' in page and 'id="profile-item-cpu"' in page
    gpus = select(page, "gpu", "gpus")
    # nlp: per_server 1; larger sizes are shown disabled, with the reason
    assert '<option value="1" selected>' in gpus
    assert re.search(
        r'<option value="2" disabled[^>]*>[^<]*above your group&#39;s limit of 1', gpus
    )
    assert platform.api("GET", "/hub/api/users/nina")["groups"] == ["nlp"]
    assert "nina" in platform.api("GET", "/hub/api/groups/nlp")["users"]

    # victor: [vision, ignored-team]; the hub mirrors both, the policy uses vision only
    with contextlib.closing(oidc_login(platform, "sub-victor")) as victor:
        page = spawn_page(victor, platform)
    assert VISION_IMG in page and NLP_IMG not in page
    assert 'value="2"' in select(page, "gpu", "gpus")
    assert sorted(platform.api("GET", "/hub/api/users/victor")["groups"]) == [
        "ignored-team",
        "vision",
    ]

    # A subject in no group gets the policy's default group (CPU only); when the provider's
    # claim changes, the next login changes the hub groups and the profiles with it.
    name = f"oi-{uuid.uuid4().hex[:6]}"
    set_claims(oidc_provider, f"sub-{name}", name, [])
    with contextlib.closing(oidc_login(platform, f"sub-{name}")) as client:
        page = spawn_page(client, platform)
    assert 'id="profile-item-gpu"' not in page and CPU_IMG in page
    assert platform.api("GET", f"/hub/api/users/{name}")["groups"] == []
    set_claims(oidc_provider, f"sub-{name}", name, ["nlp"])
    with contextlib.closing(oidc_login(platform, f"sub-{name}")) as client:
        page = spawn_page(client, platform)
    assert 'id="profile-item-gpu"' in page and NLP_IMG in page
    assert platform.api("GET", f"/hub/api/users/{name}")["groups"] == ["nlp"]
    assert name in platform.api("GET", "/hub/api/groups/nlp")["users"]


# ----------------------------------------------------------------------------- a full cluster


def gpu_pod(name: str, gpus: int) -> dict[str, Any]:
    """Someone else's GPU workload (not gpulab's: it takes GPUs, not anyone's quota)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"test": "gpu-filler"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["sleep", "3600"],
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                    # The namespace enforces Pod Security "restricted", as gpulab's does.
                    "securityContext": CONTAINER_SECURITY_CONTEXT,
                }
            ],
            "securityContext": POD_SECURITY_CONTEXT,
        },
    }


@pytest.fixture
def fill(spawner_platform) -> Iterator[Any]:
    """fill(4, 3): GPU pods of those sizes, each bound to a node; deleted at the end."""
    made: list[str] = []

    def make(*sizes: int) -> None:
        for size in sizes:
            name = f"filler-{uuid.uuid4().hex[:6]}"
            made.append(name)
            kubectl(spawner_platform, "apply", "-f", "-", input=json.dumps(gpu_pod(name, size)))
        for name in made:
            until(
                f"{name} scheduled",
                lambda n=name: (get_pod(spawner_platform, n) or {}).get("spec", {}).get("nodeName"),
            )

    yield make
    if made:
        kubectl(spawner_platform, "delete", "pod", "-n", NAMESPACE, *made, "--wait=true")


HUB_USER_AGENT = "OpenAPI-Generator/"  # kubernetes_asyncio's default: KubeSpawner's client


def hub_requests(platform: Any) -> list[dict[str, Any]]:
    """The hub's Kubernetes API requests, from kubesim's audit log (the services and kubectl
    send their own user agents)."""
    path = platform.state_dir / "kubesim-audit.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r["userAgent"].startswith(HUB_USER_AGENT)]


def test_a_full_node_disables_gpu_sizes_with_the_reason_and_costs_no_api_call(
    spawner_platform, oidc_provider, fill
):
    platform = spawner_platform
    name, client = new_oidc_user(platform, oidc_provider, ["vision"])
    with contextlib.closing(client):
        fill(4, 3)  # one node full, one with a single free GPU
        page = until(
            "the spawn page sees the filled nodes",
            lambda: (p := spawn_page(client, platform)) and "1 of 8 GPUs free" in p and p,
        )
        assert "<strong>a100</strong>: 1 of 8 GPUs free (at most 1 on one node)" in page
        gpus = select(page, "gpu", "gpus")
        # 2 GPUs fit on a node, just not now: the spawn would wait, and the page says so.
        assert "2 GPUs (a100) — will wait for GPUs (about 0 ahead)" in gpus
        assert 'value="2" disabled' not in gpus
        assert '<option value="1" selected>' in gpus  # the size that fits is the default
        assert "Your GPU quota: 4 of 4 left" in page

        # Page views read the watch caches: no Kubernetes request from the hub per view.
        before = hub_requests(platform)
        # the view did list nodes and pods once (then watches): the log does show the hub
        assert {"nodes", "pods"} <= {r["resource"] for r in before if r["verb"] == "list"}
        for _ in range(5):
            assert "1 of 8 GPUs free" in spawn_page(client, platform)
        during = hub_requests(platform)[len(before) :]
        assert [r for r in during if r["verb"] != "watch"] == []


def read_progress(platform: Any, name: str, stop: Any) -> list[dict[str, Any]]:
    """Events of the spawn's progress stream (SSE), until ``stop(event)`` or the stream ends."""
    events: list[dict[str, Any]] = []
    url = f"{platform.hub_url}/hub/api/users/{name}/server/progress"
    headers = {"Authorization": f"token {platform.admin_token}"}
    with httpx.stream("GET", url, headers=headers, timeout=DEADLINE) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                events.append(event)
                if stop(event) or event.get("failed") or event.get("ready"):
                    break
    return events


def start_pending(platform: Any, name: str, options: dict[str, str]) -> None:
    with contextlib.suppress(urllib.error.HTTPError):
        platform.api("POST", f"/hub/api/users/{name}/server", options)
    model = server_model(platform, name)
    assert model is not None and model["pending"] == "spawn", model


def test_a_pending_spawn_says_why_and_can_be_cancelled(spawner_platform, oidc_provider, fill):
    platform = spawner_platform
    name, client = new_oidc_user(platform, oidc_provider, ["vision"])
    client.close()
    fill(4, 4)  # no GPU left
    until("the hub sees the full cluster", lambda: "0 of 8" in _any_spawn_page(platform))
    # The page offered nothing, but someone may still ask (the REST API, or a stale page).
    start_pending(platform, name, {"profile": "gpu", "gpus": "1"})
    try:
        events = read_progress(platform, name, lambda e: "waiting for a free" in e["message"])
        waiting = events[-1]
        assert waiting["message"].startswith("waiting for a free A100 GPU: no request ahead.")
        assert "gpulab waits up to 10m for GPUs to free up" in waiting["message"]
        # the scheduler's own reason, only under "details"
        assert "Insufficient nvidia.com/gpu" not in waiting["message"]
        assert "<summary>details</summary>" in waiting["html_message"]
        assert "Insufficient nvidia.com/gpu" in waiting["html_message"]
        pod = get_pod(platform, pod_name(name))
        assert pod is not None and pod["status"]["phase"] == "Pending"
    finally:
        # Cancel: stop while pending (what the spawn page's cancel does).
        with contextlib.suppress(urllib.error.HTTPError):
            platform.api("DELETE", f"/hub/api/users/{name}/server")
    until("pending spawn cancelled", lambda: server_model(platform, name) is None)
    until("the pending pod is gone", lambda: get_pod(platform, pod_name(name)) is None)


def _any_spawn_page(platform: Any) -> str:
    """The availability panel as the cluster view sees it (any vision user's page)."""
    return spawn_page(_viewer(platform), platform)


_viewers: dict[str, httpx.Client] = {}


def _viewer(platform: Any) -> httpx.Client:
    if platform.hub_url not in _viewers:
        _viewers[platform.hub_url] = oidc_login(platform, "sub-victor")
    return _viewers[platform.hub_url]


@pytest.fixture(autouse=True, scope="module")
def _close_viewers() -> Iterator[None]:
    yield
    for c in _viewers.values():
        c.close()
    _viewers.clear()


def test_the_wait_for_gpus_bound_fails_the_spawn_with_a_clear_message(
    spawner_platform, oidc_provider, fill
):
    platform = spawner_platform
    name, client = new_oidc_user(platform, oidc_provider, ["nlp"])  # wait_for_gpus: 15s
    client.close()
    fill(4, 4)
    until("the hub sees the full cluster", lambda: "0 of 8" in _any_spawn_page(platform))
    start_pending(platform, name, {"profile": "gpu", "gpus": "1", "image": NLP_IMG})
    try:
        events = read_progress(platform, name, lambda e: False)
        assert events[-1].get("failed"), events[-1]
        message = events[-1]["message"]
        assert "no node could take 1 a100 GPU within 15s (your groups' wait_for_gpus)" in message
        assert "Insufficient nvidia.com/gpu" not in message  # the scheduler's text: the log
        assert "Try fewer GPUs, or later" in message
        until("failed spawn cleared", lambda: server_model(platform, name) is None)
        until("the pod of the failed spawn is gone", lambda: not get_pod(platform, pod_name(name)))
    finally:
        stop_server(platform, name)


# ----------------------------------------------------------------------------- homes


def test_deleting_a_user_keeps_the_home_and_snapshots_it(spawner_platform, oidc_provider):
    platform = spawner_platform
    name, client = new_oidc_user(platform, oidc_provider, ["nlp"])
    client.close()
    claim = f"home-{escape_username(name)}"
    try:
        platform.api("POST", f"/hub/api/users/{name}/server", {"profile": "cpu", "image": CPU_IMG})
        wait_ready(platform, name)
    finally:
        stop_server(platform, name)
    home = platform.state_dir / "kubesim" / "volumes" / NAMESPACE / claim
    (home / "notes.txt").write_text("keep me")  # as the user's server would have written

    platform.api("DELETE", f"/hub/api/users/{name}")
    with pytest.raises(urllib.error.HTTPError):
        platform.api("GET", f"/hub/api/users/{name}")

    pvc = json.loads(kubectl(platform, "get", "pvc", claim, "-n", NAMESPACE, "-o", "json"))
    assert pvc["status"]["phase"] == "Bound" and "deletionTimestamp" not in pvc["metadata"]
    assert (home / "notes.txt").read_text() == "keep me"
    # on_user_delete: snapshot -> a VolumeSnapshot of the home, the claim marked for later
    snaps = json.loads(
        kubectl(
            platform,
            "get",
            "volumesnapshots",
            "-n",
            NAMESPACE,
            "-l",
            f"gpulab.io/user={escape_username(name)}",
            "-o",
            "json",
        )
    )["items"]
    assert len(snaps) == 1
    assert snaps[0]["spec"]["source"] == {"persistentVolumeClaimName": claim}
    assert snaps[0]["spec"]["volumeSnapshotClassName"] == "kubesim-snapclass"
    assert (
        pvc["metadata"]["annotations"]["gpulab.io/deletion-snapshot"]
        == (snaps[0]["metadata"]["name"])
    )
    assert "gpulab.io/delete-after" in pvc["metadata"]["labels"]


# ----------------------------------------------------------------------------- RBAC

# The Zero to JupyterHub chart's hub Role (templates/hub/rbac.yaml), in the release namespace:
# the local platform binds the same rules to its hub identity.
CHART_HUB_ROLE = CHART_HUB_ROLE_RULES


def test_zz_the_hubs_calls_are_granted_by_the_chart_role_and_rbac_hub(spawner_platform):
    """Last in this module: every call the hub made above (spawns, pending and failed spawns,
    page views, a user's deletion with a snapshot) is granted by the chart's hub Role plus
    helm-values/manifests/rbac-hub.yaml -- namespaced calls by Roles, cluster-wide ones by the
    ClusterRole."""
    from gpulab.platform import REPO_ROOT

    manifest = REPO_ROOT / "helm-values" / "manifests" / "rbac-hub.yaml"
    calls = [ApiCall.from_record(r) for r in hub_requests(spawner_platform)]
    assert {c.resource for c in calls} >= {"pods", "nodes", "jobs", "volumesnapshots"}
    namespaced = [c for c in calls if c.namespace]
    cluster = [c for c in calls if not c.namespace]
    roles = CHART_HUB_ROLE + load_role_rules(manifest, "gpulab-hub")
    missing, _ = rules_cover(roles, namespaced)
    assert missing == [], f"the hub's Roles lack {missing}"
    missing, extra = rules_cover(load_role_rules(manifest, "gpulab-hub-cluster"), cluster)
    assert missing == [], f"the hub's ClusterRole lacks {missing}"
    assert [str(p) for p in extra] in ([], ["get nodes (core)"])
    missing, extra = rules_cover(load_role_rules(manifest, "gpulab-hub"), namespaced)
    # Granted for clusters that run Kueue (queued servers' Workloads), which this platform
    # does not: the Kueue platform's tests exercise them.
    kueue_only = {Permission("kueue.x-k8s.io", "workloads", v) for v in ("list", "watch")}
    extra = [p for p in extra if p not in kueue_only]
    assert extra == [], f"rbac-hub.yaml's Role grants calls the hub never made: {extra}"
