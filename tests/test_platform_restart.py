"""The local platform keeps its state across a restart and leaves no process behind.

One platform pair for the module: the first run makes a job (its pod finishes and logs), a
home claim, an S3 object (when Ceph is installed) and a running notebook server with a file in
its home, then stops as Ctrl-C does; the second run starts on the same state dir. The last test SIGKILLs the second run's hub and watches its
proxy and managed services go.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from gpulab.hub.die_with_parent import dying_with_this_process
from gpulab.hub.names import escape_username
from gpulab.hub.workload.security import CONTAINER_SECURITY_CONTEXT, POD_SECURITY_CONTEXT

from gpulab.platform import (
    PROXY_PID_FILE,
    LocalPlatform,
    PlatformConfig,
    ceph_available,
    free_port,
)

DEADLINE = 60.0  # seconds: a bound for slow machines, not a speed target
JOB = "restart-train"
HOME = "claim-restart-home"
BUCKET, KEY = "restart-outputs", "model.txt"
POLICY = Path(__file__).resolve().parent / "e2e" / "policy.yaml"
USER, NOTE = "returning", "thesis.txt"
SERVER_OPTIONS = {"profile": "cpu", "image": "harbor.local/shared/scipy:2024.10"}


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _descendants(pid: int) -> set[int]:
    todo, seen = [pid], set()
    while todo:
        for child in _children(todo.pop()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait(check, what: str, deadline: float = DEADLINE):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if result := check():
            return result
        time.sleep(0.2)
    raise AssertionError(f"not within {deadline:.0f} s: {what}")


def _s3_client(platform: LocalPlatform):
    import boto3

    assert platform.s3 is not None
    return boto3.client(
        "s3",
        endpoint_url=platform.s3.endpoint,
        aws_access_key_id=platform.s3.access_key,
        aws_secret_access_key=platform.s3.secret_key,
        region_name="us-east-1",
    )


def _server(platform: LocalPlatform) -> dict | None:
    return platform.api("GET", f"/hub/api/users/{USER}")["servers"].get("")


def _start_server(platform: LocalPlatform) -> None:
    platform.api("POST", f"/hub/api/users/{USER}/server", SERVER_OPTIONS)
    _wait(lambda: (s := _server(platform)) and s.get("ready"), "server ready", 2 * DEADLINE)


def _note_url(platform: LocalPlatform) -> str:
    return f"{platform.hub_url}/user/{USER}/api/contents/{NOTE}"


def _write_note(platform: LocalPlatform) -> None:
    """A user whose server runs and has written a file to the home."""
    platform.api("POST", f"/hub/api/users/{USER}")
    _start_server(platform)
    token = platform.user_token(USER)
    reply = httpx.put(
        _note_url(platform),
        json={"type": "file", "format": "text", "content": "chapter 1"},
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert reply.status_code in (200, 201), reply.text


def _make_state(platform: LocalPlatform) -> None:
    """A finished job, a home claim, (with Ceph) an output object, a running server."""
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": JOB},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    # gpulab's own contexts: the namespace enforces Pod Security "restricted".
                    "securityContext": dict(POD_SECURITY_CONTEXT),
                    "containers": [
                        {
                            "name": "main",
                            "image": "python",
                            "command": ["echo", "epoch 1 done"],
                            "securityContext": dict(CONTAINER_SECURITY_CONTEXT),
                        }
                    ],
                }
            },
        },
    }
    platform._kube("POST", "/apis/batch/v1/namespaces/default/jobs", job)
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": HOME},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    platform._kube("POST", "/api/v1/namespaces/default/persistentvolumeclaims", claim)
    if platform.s3 is not None:
        s3 = _s3_client(platform)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"weights")
    _wait(lambda: (_job(platform).get("status") or {}).get("succeeded"), f"job {JOB} succeeded")
    _write_note(platform)


def _job(platform: LocalPlatform) -> dict:
    return platform._kube("GET", f"/apis/batch/v1/namespaces/default/jobs/{JOB}")


def _run_pids(platform: LocalPlatform) -> set[int]:
    """Every process of a running platform: its parts, their descendants, Ceph's daemons."""
    pids: set[int] = set()
    for proc in platform.procs:
        pids.add(proc.popen.pid)
        pids |= _descendants(proc.popen.pid)
    for pid_file in (platform.state_dir / "microceph" / "run").glob("*.pid"):
        pids.add(int(pid_file.read_text().strip()))
    return pids


@dataclass
class Restarted:
    platform: LocalPlatform  # the second run, still running
    first_run_pids: set[int]


@pytest.fixture(scope="module")
def restarted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Restarted]:
    config = PlatformConfig(
        state_dir=tmp_path_factory.mktemp("state"),
        port=free_port(),
        policy_path=POLICY,
        demo_users=False,
        s3=ceph_available(),
    )
    first = LocalPlatform(config).start()
    try:
        _make_state(first)
        first_pids = _run_pids(first)
    finally:
        first.stop()  # what Ctrl-C on `gpulab up` does
    second = LocalPlatform(config).start()
    try:
        yield Restarted(second, first_pids)
    finally:
        second.stop()


def test_no_process_of_the_first_run_is_left(restarted: Restarted) -> None:
    assert restarted.first_run_pids
    assert [pid for pid in restarted.first_run_pids if _alive(pid)] == []


def test_job_is_found_again_finished(restarted: Restarted) -> None:
    assert _job(restarted.platform)["status"]["succeeded"] == 1


def test_finished_jobs_log_is_readable(restarted: Restarted) -> None:
    platform = restarted.platform
    pods = platform._kube("GET", f"/api/v1/namespaces/default/pods?labelSelector=job-name={JOB}")
    [pod] = pods["items"]
    with platform.kube_client() as kube:
        log = kube.get(f"/api/v1/namespaces/default/pods/{pod['metadata']['name']}/log")
    assert log.status_code == 200 and log.text.strip() == "epoch 1 done"


def test_home_claim_is_found_again(restarted: Restarted) -> None:
    claim = restarted.platform._kube(
        "GET", f"/api/v1/namespaces/default/persistentvolumeclaims/{HOME}"
    )
    assert claim["status"]["phase"] == "Bound"


def test_s3_object_is_found_again(restarted: Restarted) -> None:
    if restarted.platform.s3 is None:
        pytest.skip("Ceph is not installed: the platform runs without S3")
    body = _s3_client(restarted.platform).get_object(Bucket=BUCKET, Key=KEY)["Body"].read()
    assert body == b"weights"


def test_server_running_at_the_stop_shows_as_stopped(restarted: Restarted) -> None:
    _wait(lambda: _server(restarted.platform) is None, "the hub sees the server stopped")


def test_returning_user_gets_a_server_with_the_home_kept(restarted: Restarted) -> None:
    platform = restarted.platform
    _wait(lambda: _server(platform) is None, "the hub sees the server stopped")
    _start_server(platform)
    token = platform.user_token(USER)
    reply = httpx.get(_note_url(platform), headers={"Authorization": f"token {token}"}, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.json()["content"] == "chapter 1"
    claim = f"home-{escape_username(USER)}"
    assert platform._kube("GET", f"/api/v1/namespaces/default/persistentvolumeclaims/{claim}")


def test_sigkilled_hub_takes_its_proxy_and_services_with_it(restarted: Restarted) -> None:
    """Runs last: it kills the second run's hub."""
    [hub] = [p for p in restarted.platform.procs if p.name == "jupyterhub"]
    children = _wait(lambda: _children(hub.popen.pid), "the hub's children")
    commands = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in children]
    # The proxy and both managed services (gateway, culler) are the hub's own children.
    assert len(children) >= 3, json.dumps([c.decode(errors="replace") for c in commands])
    os.kill(hub.popen.pid, signal.SIGKILL)
    hub.popen.wait()
    _wait(lambda: not any(_alive(pid) for pid in children), "the hub's children gone")


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen]:
    """A live process that merely has "configurable-http-proxy" on its command line."""
    code = "import time; print('ready', flush=True); time.sleep(120)"
    argv = [sys.executable, "-c", code, "configurable-http-proxy"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"  # running, not starting
    yield proc
    proc.kill()
    proc.wait()


def test_a_proxy_left_by_an_earlier_run_is_ended(tmp_path: Path, sleeper) -> None:
    (tmp_path / PROXY_PID_FILE).write_text(str(sleeper.pid))
    LocalPlatform(PlatformConfig(state_dir=tmp_path))._stop_leftovers()
    assert sleeper.wait(timeout=DEADLINE) is not None
    assert not (tmp_path / PROXY_PID_FILE).exists()


def test_a_pid_file_naming_another_program_is_removed_and_the_program_spared(
    tmp_path: Path,
) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (tmp_path / PROXY_PID_FILE).write_text(str(other.pid))
        LocalPlatform(PlatformConfig(state_dir=tmp_path))._stop_leftovers()
        assert other.poll() is None
        assert not (tmp_path / PROXY_PID_FILE).exists()
    finally:
        other.kill()
        other.wait()


def test_the_wrapped_command_is_the_process_the_hub_started() -> None:
    """The wrapper execs: the hub's pid (and pid file) is the command's own."""
    argv = dying_with_this_process([sys.executable, "-c", "import os; print(os.getpid())"])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=DEADLINE)
    assert int(out) == proc.pid


def test_the_wrapper_runs_nothing_when_its_parent_is_already_gone(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    command = [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    not_our_parent = str(os.getpid() + 1_000_000)
    argv = [sys.executable, "-m", "gpulab.hub.die_with_parent", not_our_parent, *command]
    assert subprocess.run(argv, timeout=DEADLINE, capture_output=True).returncode == 1
    assert not marker.exists()
