"""A store with a journal keeps every committed object across a restart, even a kill.

Most tests build :class:`Store` objects on one folder (a "restart" is a new Store on the same
journal, without a clean stop, as after SIGKILL); one runs the real server and SIGKILLs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from gpulab.kubesim.launch import KubesimChild
from gpulab.kubesim.persist import JOURNAL, Journal
from gpulab.kubesim.reboot import REASON, end_pods_of_earlier_run
from gpulab.kubesim.store import Store, resource

PODS, CMS = resource("pods"), resource("configmaps")
T = TypeVar("T")


def _store(folder: Path) -> Store:
    return Store(journal=Journal(folder))


def _running_pod(store: Store, name: str) -> None:
    store.create(PODS, "default", {"metadata": {"name": name}, "spec": {"nodeName": "n1"}})

    def running(p: dict[str, Any]) -> None:
        p["status"] = {
            "phase": "Running",
            "containerStatuses": [
                {"name": "main", "ready": True, "state": {"running": {"startedAt": "x"}}}
            ],
        }

    store.mutate(PODS, "default", name, running)


def test_objects_survive_a_restart_without_clean_stop(tmp_path: Path) -> None:
    first = _store(tmp_path)
    first.create(CMS, "default", {"metadata": {"name": "kept"}, "data": {"a": "1"}})
    first.create(CMS, "default", {"metadata": {"name": "gone"}})
    first.delete(CMS, "default", "gone")
    second = _store(tmp_path)
    assert (second.get(CMS, "default", "kept") or {})["data"] == {"a": "1"}
    assert second.get(CMS, "default", "gone") is None


def test_resource_version_continues_after_restart(tmp_path: Path) -> None:
    first = _store(tmp_path)
    made = first.create(CMS, "default", {"metadata": {"name": "a"}})
    second = _store(tmp_path)
    later = second.create(CMS, "default", {"metadata": {"name": "b"}})
    assert int(later["metadata"]["resourceVersion"]) > int(made["metadata"]["resourceVersion"])
    assert second.get(CMS, "default", "a") == made


def test_watch_from_before_restart_gets_410(tmp_path: Path) -> None:
    first = _store(tmp_path)
    old_rv = first.create(CMS, "default", {"metadata": {"name": "a"}})["metadata"]
    first.create(CMS, "default", {"metadata": {"name": "b"}})
    watch = _store(tmp_path).watch(CMS, "default", resource_version=old_rv["resourceVersion"])
    event = watch._queue[0]
    assert event.type == "ERROR" and event.object["code"] == 410


def test_torn_last_journal_line_is_ignored(tmp_path: Path) -> None:
    first = _store(tmp_path)
    first.create(CMS, "default", {"metadata": {"name": "whole"}})
    with (tmp_path / JOURNAL).open("a") as journal:
        journal.write('{"rv": 99, "r": "/configmaps", "t": "PU')
    second = _store(tmp_path)
    assert second.get(CMS, "default", "whole") is not None


def test_owner_index_is_rebuilt_so_garbage_collection_works(tmp_path: Path) -> None:
    first = _store(tmp_path)
    owner = first.create(CMS, "default", {"metadata": {"name": "owner"}})
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    first.create(CMS, "default", {"metadata": {"name": "dependent", "ownerReferences": [ref]}})
    second = _store(tmp_path)
    second.delete(CMS, "default", "owner")
    assert second.get(CMS, "default", "dependent") is None


def test_running_pod_of_earlier_run_ends_failed(tmp_path: Path) -> None:
    first = _store(tmp_path)
    _running_pod(first, "server")
    second = _store(tmp_path)
    assert end_pods_of_earlier_run(second) == 1
    status = (second.get(PODS, "default", "server") or {})["status"]
    assert (status["phase"], status["reason"]) == ("Failed", REASON)
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137


def test_finished_pod_of_earlier_run_is_left_alone(tmp_path: Path) -> None:
    first = _store(tmp_path)
    first.create(PODS, "default", {"metadata": {"name": "done"}, "spec": {"nodeName": "n1"}})
    first.mutate(PODS, "default", "done", lambda p: p.update(status={"phase": "Succeeded"}))
    before = first.get(PODS, "default", "done")
    second = _store(tmp_path)
    assert end_pods_of_earlier_run(second) == 0
    assert second.get(PODS, "default", "done") == before


def _kubectl(sim: KubesimChild, *args: str, stdin: str | None = None) -> str:
    env = {**os.environ, "KUBECONFIG": str(sim.kubeconfig)}
    out = subprocess.run(
        ["kubectl", *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _apply(sim: KubesimChild, manifest: dict[str, Any]) -> None:
    _kubectl(sim, "apply", "-f", "-", stdin=json.dumps(manifest))


def _wait(sim: KubesimChild, condition: str, *target: str) -> None:
    _kubectl(sim, "wait", f"--for=jsonpath={condition}", *target, "--timeout=60s")


@contextlib.contextmanager
def _restarted_after_kill(
    tmp_path: Path, setup: Callable[[KubesimChild], T]
) -> Iterator[tuple[KubesimChild, T]]:
    """Run ``setup`` on a kubesim that keeps its store, SIGKILL it (its whole process group),
    start a new one on the same folder; yields the new server and what ``setup`` returned."""
    sim = KubesimChild.start(tmp_path, nodes="1x0", keep_store=True)
    try:
        result = setup(sim)
    finally:
        os.killpg(sim.process.pid, signal.SIGKILL)
        sim.process.wait()
    sim = KubesimChild.start(tmp_path, nodes="1x0", keep_store=True)
    try:
        yield sim, result
    finally:
        sim.stop()


def _job(name: str, backoff_limit: int, command: list[str], **pod_spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "python", "command": command}
    if "volumes" in pod_spec:
        container["volumeMounts"] = [
            {"name": v["name"], "mountPath": "/data"} for v in pod_spec["volumes"]
        ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container], **pod_spec}},
        },
    }


def test_sigkilled_server_keeps_objects_and_logs(tmp_path: Path) -> None:
    """The real server, killed with SIGKILL after a pod finished: objects and log are back."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "hello"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "python", "command": ["echo", "hi there"]}],
        },
    }

    def setup(sim: KubesimChild) -> None:
        _apply(sim, pod)
        _wait(sim, "{.status.phase}=Succeeded", "pod/hello")

    with _restarted_after_kill(tmp_path, setup) as (sim, _):
        assert _kubectl(sim, "get", "pod", "hello", "-o", "jsonpath={.status.phase}") == "Succeeded"
        assert _kubectl(sim, "logs", "hello").strip() == "hi there"


def test_job_replaces_its_pod_that_ran_when_kubesim_was_killed(tmp_path: Path) -> None:
    """A node reboot: the running pod ends Failed (Terminated); the Job makes a new pod."""

    def setup(sim: KubesimChild) -> str:
        _apply(sim, _job("train", 1, ["sleep", "600"]))
        _wait(sim, "{.status.phase}=Running", "pod", "-l", "job-name=train")
        [first] = _kubectl(sim, "get", "pods", "-o", "name").split()
        return first

    with _restarted_after_kill(tmp_path, setup) as (sim, first):
        reason = _kubectl(sim, "get", first, "-o", "jsonpath={.status.phase}/{.status.reason}")
        assert reason == f"Failed/{REASON}"
        _wait(sim, "{.status.failed}=1", "job/train")
        _wait(sim, "{.status.active}=1", "job/train")
        assert len(_kubectl(sim, "get", "pods", "-o", "name").split()) == 2


def test_restart_counts_no_earlier_failure_twice(tmp_path: Path) -> None:
    """The Job's first pod failed before the kill, its second was running: after the restart
    the Job has failed=2 (not 3, which would exceed backoffLimit 2) and a third pod."""
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "marker"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    first_fails = (
        "if [ -e /data/failed-once ]; then sleep 600; else touch /data/failed-once; exit 1; fi"
    )
    volume = {"name": "data", "persistentVolumeClaim": {"claimName": "marker"}}

    def setup(sim: KubesimChild) -> None:
        _apply(sim, claim)
        _apply(sim, _job("flaky", 2, ["sh", "-c", first_fails], volumes=[volume]))
        _wait(sim, "{.status.failed}=1", "job/flaky")
        _wait(sim, "{.status.ready}=1", "job/flaky")

    with _restarted_after_kill(tmp_path, setup) as (sim, _):
        _wait(sim, "{.status.active}=1", "job/flaky")
        assert _kubectl(sim, "get", "job/flaky", "-o", "jsonpath={.status.failed}") == "2"
