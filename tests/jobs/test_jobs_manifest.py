"""The rendered Job and upload Secret: labels, security, GPUs, mounts, exec form, no secrets,
and both valid against the Kubernetes 1.31 OpenAPI schema (strict)."""

from __future__ import annotations

import base64
import json

import kubernetes_validate
import pytest
from gpulab.hub.jobs.ids import submit_key
from gpulab.hub.jobs.manifest import (
    RUNNER_COMMAND,
    UPLOAD_MOUNT,
    k8s_literal,
    render_job,
    render_upload_secret,
    upload_secret_name,
    with_owner,
)
from gpulab.hub.jobs.spec import JobSpec, parse_job_spec
from gpulab.hub.names import escape_username
from gpulab.hub.workload.labels import SUBMIT_KEY_LABEL
from jobs_testlib import IMAGE

OWNER = "Alice.Smith@example.org"
JOB_ID = "train-abcdef"
SECRET_SIG = "0123456789abcdef-signature-that-must-stay-secret"
CREDENTIAL = {
    "version": 1,
    "url": "http://127.0.0.1:7480/gpulab-outputs",
    "prefix": f"{escape_username(OWNER)}/{JOB_ID}/",
    "fields": {"policy": "cG9saWN5", "x-amz-signature": SECRET_SIG},
}


def render(spec: JobSpec, ent, policy, **kw):
    args = dict(
        owner=OWNER,
        job_id=JOB_ID,
        entitlement=ent,
        policy=policy,
        image=spec.image or IMAGE,
        namespace="gpulab",
        upload_secret_name=upload_secret_name(JOB_ID),
        gateway_url="http://hub/services/jobs-gateway/",
    )
    args.update(kw)
    return render_job(spec, **args)


def validate_k8s(obj):
    kubernetes_validate.validate(obj, "1.31.0", strict=True)


@pytest.fixture
def gpu_spec():
    return parse_job_spec(
        {
            "name": "train",
            "image": IMAGE,
            "command": ["python", "train.py", "$(HOME)", "; rm -rf ~"],
            "args": ["--lr", "0.1"],
            "env": {"WANDB_MODE": "offline", "PRICE": "$5 $(HOME) $$"},
            "gpus": 2,
            "max_runtime": "2h",
            "retries": 2,
            "datasets": ["coco"],
        }
    )


def container(job):
    [c] = job["spec"]["template"]["spec"]["containers"]
    return c


def env_of(job):
    return {e["name"]: e["value"] for e in container(job)["env"]}


def test_job_is_valid_kubernetes(gpu_spec, vision, policy):
    job = render(gpu_spec, vision, policy, idempotency_key="retry-1")
    validate_k8s(job)
    cpu = render(
        parse_job_spec({"name": "nb", "notebook": "a.ipynb", "parameters": {"x": "é"}}),
        vision,
        policy,
    )
    validate_k8s(cpu)
    secret = render_upload_secret(
        owner=OWNER,
        job_id=JOB_ID,
        namespace="gpulab",
        name=upload_secret_name(JOB_ID),
        credential=CREDENTIAL,
        group="vision",
    )
    validate_k8s(secret)
    validate_k8s(with_owner(secret, {**job, "metadata": {**job["metadata"], "uid": "1234-uid"}}))


def test_labels_and_annotations(gpu_spec, vision, policy):
    job = render(gpu_spec, vision, policy, idempotency_key="retry-1")
    meta = job["metadata"]
    assert meta["name"] == JOB_ID and meta["namespace"] == "gpulab"
    expected = {
        "app.kubernetes.io/name": "gpulab",
        "app.kubernetes.io/component": "job",
        "app.kubernetes.io/managed-by": "gpulab",
        "gpulab.io/user": escape_username(OWNER),
        "gpulab.io/job-id": JOB_ID,
        "gpulab.io/group": "vision",
        "gpulab.io/gpus": "2",
        "gpulab.io/gpu-type": "a100",
    }
    assert meta["labels"] == {**expected, SUBMIT_KEY_LABEL: submit_key(OWNER, "retry-1")}
    assert job["spec"]["template"]["metadata"]["labels"] == expected
    assert meta["annotations"]["gpulab.io/owner"] == OWNER
    assert meta["annotations"]["gpulab.io/idempotency-key"] == "retry-1"
    assert JobSpec.model_validate(json.loads(meta["annotations"]["gpulab.io/spec"])) == gpu_spec
    assert SUBMIT_KEY_LABEL not in render(gpu_spec, vision, policy)["metadata"]["labels"]


def test_job_policy_fields(gpu_spec, vision, default_ent, policy):
    spec = render(gpu_spec, vision, policy)["spec"]
    assert spec["backoffLimit"] == 2
    assert spec["activeDeadlineSeconds"] == 7200
    assert spec["ttlSecondsAfterFinished"] == 7 * 86400
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    plain = parse_job_spec(
        {"name": "x", "image": "harbor.example.org/shared/a:1", "command": ["x"]}
    )
    assert render(plain, default_ent, policy)["spec"]["activeDeadlineSeconds"] == 7200  # group max


def test_no_token_no_service_links_and_restricted_security(gpu_spec, vision, policy):
    pod = render(gpu_spec, vision, policy)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 100,
        "fsGroup": 100,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    sc = pod["containers"][0]["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["runAsNonRoot"] is True and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "serviceAccountName" not in pod and "hostNetwork" not in pod
    assert pod["imagePullSecrets"] == [{"name": "harbor-pull"}]


def test_gpu_resources_node_selector_and_tolerations(gpu_spec, vision, policy):
    job = render(gpu_spec, vision, policy)
    pod = job["spec"]["template"]["spec"]
    res = container(job)["resources"]
    assert res["limits"]["nvidia.com/gpu"] == "2" and res["requests"]["nvidia.com/gpu"] == "2"
    assert res["limits"]["cpu"] == "4000m" and res["requests"]["memory"] == "2Gi"  # gpu profile
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    cpu_job = render(
        parse_job_spec({"name": "x", "command": ["x"], "cpu": "3", "memory": "5Gi"}), vision, policy
    )
    cpu_pod = cpu_job["spec"]["template"]["spec"]
    assert "nodeSelector" not in cpu_pod and "tolerations" not in cpu_pod
    assert container(cpu_job)["resources"] == {
        "requests": {"cpu": "3", "memory": "5Gi"},
        "limits": {"cpu": "3", "memory": "5Gi"},
    }
    assert "gpulab.io/gpu-type" not in cpu_job["metadata"]["labels"]


def test_volumes_home_datasets_shm_and_upload(gpu_spec, vision, policy):
    job = render(gpu_spec, vision, policy)
    pod = job["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in container(job)["volumeMounts"]}
    assert volumes["home"]["persistentVolumeClaim"]["claimName"] == f"home-{escape_username(OWNER)}"
    assert mounts["home"]["mountPath"] == "/home/jovyan" and not mounts["home"].get("readOnly")
    assert set(volumes) == {"home", "dataset-coco", "dshm", "upload"}  # only the chosen dataset
    assert mounts["dataset-coco"] == {
        "name": "dataset-coco",
        "mountPath": "/datasets/coco",
        "readOnly": True,
    }
    assert volumes["dataset-coco"]["persistentVolumeClaim"]["readOnly"] is True
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "2Gi"}  # gpu profile's
    assert mounts["dshm"]["mountPath"] == "/dev/shm"
    assert volumes["upload"]["secret"]["secretName"] == f"{JOB_ID}-upload"
    assert mounts["upload"] == {"name": "upload", "mountPath": UPLOAD_MOUNT, "readOnly": True}
    every = render(
        parse_job_spec({"name": "x", "command": ["x"], "shm_size": "3Gi"}), vision, policy
    )
    names = {v["name"] for v in every["spec"]["template"]["spec"]["volumes"]}
    assert {"dataset-imagenet", "dataset-coco"} <= names
    dshm = [v for v in every["spec"]["template"]["spec"]["volumes"] if v["name"] == "dshm"][0]
    assert dshm["emptyDir"]["sizeLimit"] == "3Gi"


def test_exec_form_runner_and_literal_env(gpu_spec, vision, policy):
    job = render(gpu_spec, vision, policy)
    c = container(job)
    assert c["command"] == RUNNER_COMMAND and "args" not in c
    assert not any(part in ("sh", "bash", "-c") for part in c["command"])
    env = env_of(job)
    assert env["PRICE"] == k8s_literal("$5 $(HOME) $$") == "$$5 $$(HOME) $$$$"
    assert env["GPULAB_JOB_ID"] == JOB_ID and env["GPULAB_UPLOAD_DIR"] == UPLOAD_MOUNT
    assert env["HOME"] == "/home/jovyan" and env["GPULAB_GPUS"] == "2"
    runner_spec = json.loads(env["GPULAB_JOB_SPEC"].replace("$$", "$"))
    assert runner_spec["command"] == gpu_spec.command and runner_spec["args"] == ["--lr", "0.1"]
    assert "env" not in runner_spec
    assert not any(k.startswith("KUBERNETES_") for k in env)


def test_no_secrets_in_the_job(gpu_spec, vision, policy):
    job = render(gpu_spec, vision, policy)
    text = json.dumps(job)
    assert SECRET_SIG not in text and "x-amz" not in text and 'policy": "cG9' not in text
    for forbidden in ("TOKEN", "SECRET", "ACCESS_KEY", "PASSWORD"):
        assert not any(forbidden in e["name"] for e in container(job)["env"])
    assert "secretKeyRef" not in text


def test_upload_secret_holds_only_the_credential_and_gets_an_owner():
    secret = render_upload_secret(
        owner=OWNER,
        job_id=JOB_ID,
        namespace="gpulab",
        name=upload_secret_name(JOB_ID),
        credential=CREDENTIAL,
        group="vision",
    )
    assert secret["type"] == "Opaque" and list(secret["data"]) == ["credential.json"]
    assert json.loads(base64.b64decode(secret["data"]["credential.json"])) == CREDENTIAL
    assert secret["metadata"]["labels"]["gpulab.io/job-id"] == JOB_ID
    assert SECRET_SIG not in json.dumps(secret["metadata"])
    with pytest.raises(ValueError):
        with_owner(secret, {"metadata": {"name": JOB_ID}})
    owned = with_owner(secret, {"metadata": {"name": JOB_ID, "uid": "u-1"}})
    assert owned["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": JOB_ID,
            "uid": "u-1",
            "controller": True,
            "blockOwnerDeletion": False,
        }
    ]
    assert "ownerReferences" not in secret["metadata"]  # not modified in place


def test_gpu_job_without_a_resolvable_type_is_refused(multi, policy):
    spec = parse_job_spec(
        {"name": "x", "image": "harbor.example.org/shared/a:1", "command": ["x"], "gpus": 1}
    )
    with pytest.raises(ValueError):
        render(spec, multi, policy)
