"""The local platform's kubesim authenticates and authorizes every request, and enforces Pod
Security "restricted" on the user namespace: the attacks a notebook could once make on it fail.

kubesim alone, started by the same launcher code as `gpulab up` (``LocalPlatform``), with its
token file, kubeconfigs and the RBAC of helm-values/manifests applied.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gpulab.hub.workload.security import CONTAINER_SECURITY_CONTEXT, POD_SECURITY_CONTEXT

from gpulab import kube_identities as ki
from gpulab.platform import LocalPlatform, PlatformConfig, free_port

PODS = "/api/v1/namespaces/default/pods"
SECRETS = "/api/v1/namespaces/default/secrets"
JOBS = "/apis/batch/v1/namespaces/default/jobs"
# The pod bob's notebook once made: root, with the host's / mounted.
ROOT_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "steal"},
    "spec": {
        "containers": [
            {
                "name": "sh",
                "image": "busybox",
                "command": ["cat", "/host/etc/shadow"],
                "securityContext": {"runAsUser": 0},
                "volumeMounts": [{"name": "host", "mountPath": "/host"}],
            }
        ],
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
    },
}


@pytest.fixture(scope="module")
def kube(tmp_path_factory) -> Iterator[LocalPlatform]:
    state = tmp_path_factory.mktemp("platform-auth")
    platform = LocalPlatform(
        PlatformConfig(state_dir=state, port=free_port(), s3=False, demo_users=False)
    )
    try:
        platform.state_dir.mkdir(parents=True, exist_ok=True)
        platform._start_kubesim()
        yield platform
    finally:
        platform.stop()


def kubectl(kube: LocalPlatform, who: ki.Identity, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(kube.kubeconfig_of(who)), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def can_i(kube: LocalPlatform, who: ki.Identity, *args: str) -> str:
    return kubectl(kube, who, "auth", "can-i", *args).stdout.strip()


# ------------------------------------------------------------------ no credential, no access
def test_a_request_without_a_token_is_401(kube: LocalPlatform) -> None:
    anonymous = httpx.Client(base_url=kube.kubesim_url, verify=kube.kube_ssl_context())
    for path in (SECRETS, PODS, "/api/v1/secrets"):
        reply = anonymous.get(path)
        assert reply.status_code == 401, path
        assert reply.json()["reason"] == "Unauthorized"


def test_kubesim_speaks_only_https(kube: LocalPlatform) -> None:
    assert kube.kubesim_url.startswith("https://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(kube.kubesim_url.replace("https://", "http://") + SECRETS, timeout=10)


def test_every_credential_file_is_owner_only(kube: LocalPlatform) -> None:
    files = [kube.kube_dir / "tokens.csv"] + [kube.kubeconfig_of(i) for i in ki.IDENTITIES]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(kube.kube_dir.stat().st_mode) == 0o700


# ------------------------------------------------------------------ each token, its Role
def test_the_gateways_token_cannot_list_secrets(kube: LocalPlatform) -> None:
    reply = kube.kube_client(ki.GATEWAY).get(SECRETS)
    assert reply.status_code == 403
    assert reply.json()["message"] == (
        'secrets is forbidden: User "system:serviceaccount:default:gpulab-jobs-gateway" '
        'cannot list resource "secrets" in API group "" in the namespace "default"'
    )


def test_the_gateways_token_cannot_create_pods(kube: LocalPlatform) -> None:
    reply = kube.kube_client(ki.GATEWAY).post(PODS, json=ROOT_POD)
    assert reply.status_code == 403
    assert "cannot create resource" in reply.json()["message"]


def test_the_cullers_token_cannot_read_secrets_or_make_jobs(kube: LocalPlatform) -> None:
    culler = kube.kube_client(ki.CULLER)
    assert culler.get(SECRETS).status_code == 403
    assert culler.post(JOBS, json={"metadata": {"name": "x"}}).status_code == 403


def test_the_hubs_token_reaches_no_other_namespace(kube: LocalPlatform) -> None:
    assert kube.kube_client(ki.HUB).get("/api/v1/namespaces/kube-system/secrets").status_code == 403


# ------------------------------------------------------------------ Pod Security
def test_a_root_pod_mounting_the_host_is_refused_even_for_an_admin(kube: LocalPlatform) -> None:
    reply = kube.kube_client().post(PODS, json=ROOT_POD)
    assert reply.status_code == 403
    message = reply.json()["message"]
    assert message.startswith(
        'pods "steal" is forbidden: violates PodSecurity "restricted:latest": '
    )
    assert 'runAsUser=0 (container "sh" must not set runAsUser=0)' in message
    assert 'volume "host" uses restricted volume type "hostPath"' in message


def test_a_job_whose_pod_breaks_restricted_gets_no_pod(kube: LocalPlatform) -> None:
    """The gateway may create Jobs; the job controller's pods still meet Pod Security."""
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "steal"},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {**ROOT_POD["spec"], "restartPolicy": "Never"}},
        },
    }
    gateway, admin = kube.kube_client(ki.GATEWAY), kube.kube_client()
    assert gateway.post(JOBS, json=job).status_code == 201
    events = _wait_for_events(admin, "steal", "FailedCreate")
    assert 'violates PodSecurity "restricted:latest"' in events[0]["message"]
    pods = admin.get(PODS, params={"labelSelector": "job-name=steal"}).json()["items"]
    assert pods == []


def _wait_for_events(client: httpx.Client, name: str, reason: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while True:
        items = client.get(
            "/api/v1/namespaces/default/events",
            params={"fieldSelector": f"involvedObject.name={name}"},
        ).json()["items"]
        found = [e for e in items if e.get("reason") == reason]
        if found or time.monotonic() > deadline:
            assert found, f"no {reason} event for {name}: {items}"
            return found
        time.sleep(0.2)


# ------------------------------------------------------------------ kubectl, per identity
@pytest.mark.parametrize("who", ki.IDENTITIES, ids=lambda i: i.key)
def test_kubectl_auth_whoami_names_each_identity(kube: LocalPlatform, who: ki.Identity) -> None:
    done = kubectl(kube, who, "auth", "whoami", "-o", "json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)["status"]["userInfo"]
    assert info["username"] == who.username
    expected = list(who.groups)
    if who.service_account:
        expected += ["system:serviceaccounts", "system:serviceaccounts:default"]
    assert info["groups"] == [*expected, "system:authenticated"]


@pytest.mark.parametrize(
    ("who", "verb", "what", "answer"),
    [
        (ki.ADMIN, "delete", "nodes", "yes"),
        (ki.GATEWAY, "create", "jobs.batch", "yes"),
        (ki.GATEWAY, "delete", "secrets", "no"),
        (ki.GATEWAY, "create", "pods", "no"),
        (ki.CULLER, "delete", "jobs.batch", "no"),  # it cancels through the gateway
        (ki.CULLER, "create", "jobs.batch", "no"),
        (ki.CULLER, "list", "nodes", "yes"),
        (ki.HUB, "create", "pods", "yes"),
        (ki.HUB, "create", "jobs.batch", "no"),
        (ki.HUB, "patch", "persistentvolumeclaims", "yes"),
    ],
    ids=lambda v: v.key if isinstance(v, ki.Identity) else v,
)
def test_kubectl_auth_can_i_answers_per_identity(
    kube: LocalPlatform, who: ki.Identity, verb: str, what: str, answer: str
) -> None:
    assert can_i(kube, who, verb, what) == answer


def test_kubectl_auth_can_i_list_shows_the_gateways_role(kube: LocalPlatform) -> None:
    listed = kubectl(kube, ki.GATEWAY, "auth", "can-i", "--list").stdout
    # "<resource>  <non-resource URLs>  <resource names>  [<verbs>]"; URL rows start blank
    rows = {
        line.split()[0]: "[" + line.rpartition("[")[2]
        for line in listed.splitlines()[1:]
        if line[:1] != " "
    }
    assert rows["jobs.batch"] == "[create delete get list patch watch]"
    assert rows["secrets"] == "[create get update]"
    assert rows["pods"] == "[list patch watch]"
    assert "nodes" not in rows


def test_the_manifests_are_the_source_of_the_local_rbac(kube: LocalPlatform) -> None:
    """The Role kubesim holds is the file's, namespace adapted."""
    import yaml

    manifest = Path(ki.manifests_dir() or "") / "rbac-gateway.yaml"
    (role,) = [
        d
        for d in yaml.safe_load_all(manifest.read_text())
        if d["kind"] == "Role" and d["metadata"]["name"] == "gpulab-jobs-gateway"
    ]
    stored = kube.kube_client().get(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles/gpulab-jobs-gateway"
    )
    assert stored.json()["rules"] == role["rules"]


# ------------------------------------------------------------------ a pod holds no credential
PROBE = """
import os, pathlib, sys
for path in sys.argv[1:]:
    try:
        pathlib.Path(path).read_text()
        print("READ", path)
    except (PermissionError, FileNotFoundError, NotADirectoryError) as exc:
        print("REFUSED", path, type(exc).__name__)
print("KUBECONFIG" in os.environ, os.path.exists("/var/run/secrets/kubernetes.io"))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="pods run as uid 1000 only under a root launcher")
def test_a_pod_reads_no_token_file_and_gets_no_credential(kube: LocalPlatform) -> None:
    secrets = [str(kube.kube_dir / "tokens.csv"), str(kube.kubeconfig)]
    secrets += [str(kube.kubeconfig_of(i)) for i in (ki.HUB, ki.GATEWAY, ki.CULLER)]
    probe = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe"},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": POD_SECURITY_CONTEXT,
            "containers": [
                {
                    "name": "probe",
                    "image": "python",
                    "command": ["python3", "-c", PROBE, *secrets],
                    "securityContext": CONTAINER_SECURITY_CONTEXT,
                }
            ],
        },
    }
    admin = kube.kube_client()
    assert admin.post(PODS, json=probe).status_code == 201
    deadline = time.monotonic() + 60
    while (phase := admin.get(f"{PODS}/probe").json()["status"].get("phase")) not in (
        "Succeeded",
        "Failed",
    ):
        assert time.monotonic() < deadline, f"the probe pod is still {phase}"
        time.sleep(0.2)
    log = admin.get(f"{PODS}/probe/log").text
    assert phase == "Succeeded", log
    assert "READ" not in log.split(), log
    assert log.count("REFUSED") == len(secrets), log
    assert log.strip().splitlines()[-1] == "False False", log
