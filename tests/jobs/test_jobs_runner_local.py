"""gpulab-job-runner as a subprocess, without S3: exit codes, signals, and S3 down (the outputs
stay on the home and result.json says so). The S3 round trips are in tests/ceph/."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

RUNNER = [sys.executable, "-m", "gpulab.extensions.runner.main"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: connections are refused


def job_env(
    tmp_path: Path, spec: dict, job_id: str = "t-aaaaaa", credential: dict | None = None
) -> dict:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    upload = tmp_path / "upload"
    upload.mkdir(exist_ok=True)
    if credential is not None:
        (upload / "credential.json").write_text(json.dumps(credential))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPULAB_")}
    env.update(
        GPULAB_JOB_ID=job_id,
        GPULAB_JOB_SPEC=json.dumps(spec),
        GPULAB_HOME=str(home),
        GPULAB_UPLOAD_DIR=str(upload),
        GPULAB_UPLOAD_BACKOFF="0.01",
        GPULAB_UPLOAD_RETRY_SECONDS="0",
    )
    return env


def down_credential(job_id: str = "t-aaaaaa") -> dict:
    return {
        "version": 1,
        "url": f"http://127.0.0.1:{closed_port()}/bucket",
        "prefix": f"alice/{job_id}/",
        "fields": {"policy": "x", "x-amz-signature": "y"},
        "max_bytes": 1000,
    }


def run(env: dict, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(RUNNER, env=env, capture_output=True, text=True, timeout=120, **kw)


def result_of(tmp_path: Path, job_id: str = "t-aaaaaa") -> dict:
    return json.loads((tmp_path / "home" / ".gpulab" / "jobs" / job_id / "result.json").read_text())


def test_s3_down_leaves_outputs_on_the_home_and_says_so(tmp_path):
    script = "import os; open(os.path.join(os.environ['GPULAB_OUTPUT_DIR'], 'model.bin'), 'w').write('w'); print('trained')"
    env = job_env(
        tmp_path,
        {"name": "t", "command": [sys.executable, "-c", script]},
        credential=down_credential(),
    )
    done = run(env)
    assert done.returncode == 0, done.stderr
    assert "trained" in done.stdout
    assert "UPLOAD PENDING" in done.stdout and "outputs/t/t-aaaaaa" in done.stdout
    assert (tmp_path / "home" / "outputs" / "t" / "t-aaaaaa" / "model.bin").read_text() == "w"
    result = result_of(tmp_path)
    assert result["upload"] == "pending" and result["exit_code"] == 0
    assert result["failed"] == ["outputs/model.bin"]  # gave up after that: S3 unreachable
    assert done.stdout.count("retry") == 4  # 5 attempts
    log = (tmp_path / "home" / ".gpulab" / "jobs" / "t-aaaaaa" / "log.txt").read_text()
    assert "trained" in log


def test_s3_down_keeps_the_upload_plan_on_the_home(tmp_path):
    """The files a later upload-only run uploads: this run's outputs, by path in the home."""
    script = "import os; open(os.path.join(os.environ['GPULAB_OUTPUT_DIR'], 'model.bin'), 'w').write('w')"
    env = job_env(
        tmp_path,
        {"name": "t", "command": [sys.executable, "-c", script]},
        credential=down_credential(),
    )
    assert run(env).returncode == 0
    plan = json.loads((tmp_path / "home" / ".gpulab/jobs/t-aaaaaa/upload.json").read_text())
    assert plan["files"] == [{"name": "outputs/model.bin", "path": "outputs/t/t-aaaaaa/model.bin"}]


def test_upload_only_while_s3_is_down_exits_tempfail(tmp_path):
    script = "import os; open(os.path.join(os.environ['GPULAB_OUTPUT_DIR'], 'm'), 'w').write('m')"
    env = job_env(
        tmp_path,
        {"name": "t", "command": [sys.executable, "-c", script]},
        credential=down_credential(),
    )
    assert run(env).returncode == 0
    again = subprocess.run(
        [*RUNNER, "--upload-only"], env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 75, again.stdout + again.stderr
    assert "upload pending" in again.stdout


def test_exit_code_is_preserved_without_a_credential(tmp_path):
    env = job_env(
        tmp_path,
        {"name": "t", "command": [sys.executable, "-c", "import sys; print('x'); sys.exit(3)"]},
    )
    done = run(env)
    assert done.returncode == 3
    result = result_of(tmp_path)
    assert result["exit_code"] == 3 and result["upload"] == "pending"
    assert "no usable upload credential" in result["error"]


def test_missing_program_and_bad_spec(tmp_path):
    env = job_env(tmp_path, {"name": "t", "command": ["no-such-program-gpulab"]})
    done = run(env)
    assert done.returncode == 127 and "command not found" in done.stdout
    assert result_of(tmp_path)["exit_code"] == 127
    env = job_env(tmp_path, {"name": "t", "command": ["x"], "output_dir": "../../etc"})
    done = run(env)
    assert done.returncode == 125 and "invalid job spec" in done.stderr
    env["GPULAB_JOB_SPEC"] = "{not json"
    assert run(env).returncode == 125


def test_sigterm_is_forwarded_to_the_job(tmp_path):
    ready = tmp_path / "ready"
    script = (
        "import signal, sys, time, pathlib\n"
        "def bye(n, f):\n    print('got SIGTERM, saving', flush=True); sys.exit(7)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "while True: time.sleep(0.05)\n"
    )
    env = job_env(
        tmp_path,
        {"name": "t", "command": [sys.executable, "-c", script]},
        credential=down_credential(),
    )
    proc = subprocess.Popen(
        RUNNER, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the job did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 7
    assert "got SIGTERM, saving" in out
    result = result_of(tmp_path)
    assert result["exit_code"] == 7 and result["received_signal"] == signal.SIGTERM


def test_killed_by_a_signal_exits_128_plus_n(tmp_path):
    env = job_env(
        tmp_path,
        {
            "name": "t",
            "command": [
                sys.executable,
                "-c",
                "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
            ],
        },
    )
    done = run(env)
    assert done.returncode == 128 + 9
    assert result_of(tmp_path)["signal"] == 9


@pytest.mark.parametrize("working_dir", ["missing/dir"])
def test_missing_working_dir_is_a_clear_error(tmp_path, working_dir):
    env = job_env(tmp_path, {"name": "t", "command": ["true"], "working_dir": working_dir})
    done = run(env)
    assert done.returncode == 125 and "does not exist" in done.stdout


def write_outputs(*names: str) -> list[str]:
    """A job command that writes each of ``names`` into ``$GPULAB_OUTPUT_DIR``."""
    script = "import os\nfor n in {names!r}:\n    open(os.path.join(os.environ['GPULAB_OUTPUT_DIR'], n), 'w').write(n)\n"
    return [sys.executable, "-c", script.format(names=names)]


def test_same_name_jobs_write_to_their_own_dirs(tmp_path):
    for job_id in ("train-aaaaaa", "train-bbbbbb"):
        spec = {"name": "train", "command": write_outputs(f"{job_id}.txt")}
        env = job_env(tmp_path, spec, job_id=job_id, credential=down_credential(job_id))
        assert run(env).returncode == 0
        assert result_of(tmp_path, job_id)["output_dir"] == f"outputs/train/{job_id}"
    listing = {
        p.name: sorted(f.name for f in p.iterdir())
        for p in (tmp_path / "home/outputs/train").iterdir()
    }
    assert listing == {
        "train-aaaaaa": ["train-aaaaaa.txt"],
        "train-bbbbbb": ["train-bbbbbb.txt"],
    }


def test_a_rerun_into_a_named_output_dir_uploads_only_what_it_wrote(tmp_path):
    """Both runs write to ~/results. The second finds a.txt from the first there: it must not
    try to upload it (with S3 down, the first file it tries is the one it names as failed)."""
    first = {
        "name": "sweep",
        "command": write_outputs("a.txt", "keep.txt"),
        "output_dir": "results",
    }
    env = job_env(tmp_path, first, job_id="sweep-aaaaaa", credential=down_credential())
    assert run(env).returncode == 0
    assert result_of(tmp_path, "sweep-aaaaaa")["failed"] == ["outputs/a.txt"]
    second = {**first, "command": write_outputs("keep.txt", "z.txt")}  # rewrites keep.txt
    env = job_env(tmp_path, second, job_id="sweep-bbbbbb", credential=down_credential())
    done = run(env)
    assert done.returncode == 0
    assert "not uploaded: 1 file(s) already in ~/results before the job started" in done.stdout
    assert result_of(tmp_path, "sweep-bbbbbb")["failed"] == ["outputs/keep.txt"]


def test_a_second_run_of_the_job_finds_what_the_first_saved_in_its_checkpoint_dir(tmp_path):
    """$GPULAB_CHECKPOINT_DIR is the job's own folder on the home, the same for each run (a run
    after a preemption resumes from it), and not part of the outputs."""
    script = (
        "import os, pathlib; ck = pathlib.Path(os.environ['GPULAB_CHECKPOINT_DIR']) / 'step'; "
        "print('resumed from', ck.read_text()) if ck.exists() else ck.write_text('7')"
    )
    env = job_env(
        tmp_path,
        {"name": "t", "command": [sys.executable, "-c", script]},
        credential=down_credential(),
    )
    assert run(env).returncode == 0
    again = run(env)
    assert again.returncode == 0, again.stderr
    assert "resumed from 7" in again.stdout
    assert (tmp_path / "home" / ".gpulab/jobs/t-aaaaaa/checkpoint/step").read_text() == "7"
    plan = json.loads((tmp_path / "home" / ".gpulab/jobs/t-aaaaaa/upload.json").read_text())
    assert all("checkpoint" not in f["path"] for f in plan["files"])
