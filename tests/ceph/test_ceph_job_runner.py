"""gpulab-job-runner end to end against a real Ceph RGW: a command job and a papermill notebook
job upload outputs, log, executed notebook and result.json under <user>/<job-id>/; exit codes
are preserved; HTTPS with the CA handed over in the credential."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import nbformat
import pytest
from gpulab.hub.jobs.storage import JobStorage

pytestmark = pytest.mark.ceph
RUNNER = shutil.which("gpulab-job-runner", path=str(Path(sys.executable).parent)) or ""


@pytest.fixture(scope="module")
def storage(ceph_s3):
    st = JobStorage(
        endpoint_url=ceph_s3.endpoint,
        access_key=ceph_s3.alice_key,
        secret_key=ceph_s3.alice_secret,
        bucket=f"runner-{uuid.uuid4().hex[:10]}",
    )
    st.ensure_bucket()
    return st


def job_env(
    tmp_path: Path, storage: JobStorage, spec: dict, job_id: str, user: str = "alice"
) -> dict[str, str]:
    """The environment of a job's runner: the home under ``tmp_path``, a credential of its own."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    upload = tmp_path / f"upload-{job_id}"
    upload.mkdir()
    (upload / "credential.json").write_text(
        json.dumps(storage.upload_credential(user, job_id, 3600))
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPULAB_")}
    env.update(
        GPULAB_JOB_ID=job_id,
        GPULAB_JOB_SPEC=json.dumps(spec),
        GPULAB_HOME=str(home),
        GPULAB_UPLOAD_DIR=str(upload),
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
    )
    assert RUNNER, "the gpulab-job-runner console script is not installed in the venv"
    return env


def run_job(
    tmp_path: Path, storage: JobStorage, spec: dict, job_id: str, user: str = "alice"
) -> subprocess.CompletedProcess:
    env = job_env(tmp_path, storage, spec, job_id, user)
    return subprocess.run(
        [RUNNER], env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path
    )


def test_command_job_uploads_outputs_log_and_result(tmp_path, storage):
    script = (
        "import os, sys\n"
        "out = os.environ['GPULAB_OUTPUT_DIR']\n"
        "os.makedirs(os.path.join(out, 'ckpt'), exist_ok=True)\n"
        "open(os.path.join(out, 'ckpt', 'model.pt'), 'wb').write(b'w' * 4096)\n"
        "os.symlink('/etc/hostname', os.path.join(out, 'escape'))\n"
        "os.symlink('ckpt/model.pt', os.path.join(out, 'latest.pt'))\n"
        "print('epoch 1 loss 0.5'); print('warning', file=sys.stderr)\n"
    )
    done = run_job(
        tmp_path,
        storage,
        {"name": "train", "command": [sys.executable, "-c", script]},
        "train-aaaaaa",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "epoch 1 loss 0.5" in done.stdout and "uploaded outputs/ckpt/model.pt" in done.stdout
    paths = {f.path: f.size for f in storage.list_outputs("alice", "train-aaaaaa")}
    assert paths["outputs/ckpt/model.pt"] == 4096
    assert paths["outputs/latest.pt"] == 4096  # a symlink inside the output dir is followed
    assert "outputs/escape" not in paths  # one leaving it is not
    log = storage.read_log("alice", "train-aaaaaa").decode()
    assert "epoch 1 loss 0.5" in log and "warning" in log
    result = storage.result("alice", "train-aaaaaa")
    assert result["exit_code"] == 0 and result["upload"] == "ok" and result["uploaded"] == 3
    assert any("escape" in s for s in result["skipped"])
    url = storage.presigned_get("alice", "train-aaaaaa", "outputs/ckpt/model.pt")
    assert httpx.get(url).content == b"w" * 4096
    local = json.loads((tmp_path / "home/.gpulab/jobs/train-aaaaaa/result.json").read_text())
    assert local["upload"] == "ok"


def test_failing_command_keeps_its_exit_code(tmp_path, storage):
    done = run_job(
        tmp_path,
        storage,
        {
            "name": "fail",
            "command": [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"],
        },
        "fail-aaaaaa",
    )
    assert done.returncode == 3
    result = storage.result("alice", "fail-aaaaaa")
    assert result["exit_code"] == 3 and result["upload"] == "ok"
    assert b"boom" in storage.read_log("alice", "fail-aaaaaa")


def _notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("lr = 0.1\nlabel = 'default'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(
            "import os, json\n"
            "print('training with', lr, label)\n"
            "with open(os.path.join(os.environ['GPULAB_OUTPUT_DIR'], 'metrics.json'), 'w') as f:\n"
            "    json.dump({'lr': lr, 'label': label}, f, ensure_ascii=False)\n"
        ),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def test_notebook_job_runs_with_papermill_parameters(tmp_path, storage):
    _notebook(tmp_path / "home" / "work" / "train.ipynb")
    spec = {
        "name": "nb",
        "notebook": "work/train.ipynb",
        "parameters": {"lr": 0.001, "label": "été ✓"},
    }
    done = run_job(tmp_path, storage, spec, "nb-aaaaaa")
    assert done.returncode == 0, done.stdout + done.stderr
    paths = {f.path for f in storage.list_outputs("alice", "nb-aaaaaa")}
    assert {"outputs/metrics.json", "notebook.ipynb", "log.txt", "result.json"} <= paths
    assert "outputs/train.ipynb" not in paths  # uploaded once, as notebook.ipynb
    metrics = httpx.get(storage.presigned_get("alice", "nb-aaaaaa", "outputs/metrics.json")).json()
    assert metrics == {"lr": 0.001, "label": "été ✓"}
    executed = nbformat.reads(
        httpx.get(storage.presigned_get("alice", "nb-aaaaaa", "notebook.ipynb")).text, as_version=4
    )
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "0.001" in injected[0].source
    outputs = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "training with 0.001 été ✓" in outputs
    assert "training with 0.001" in storage.read_log("alice", "nb-aaaaaa").decode()
    assert (tmp_path / "home/outputs/nb/nb-aaaaaa/train.ipynb").exists()  # also on the home


def test_failing_notebook_uploads_the_executed_notebook(tmp_path, storage):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("raise ValueError('bad data')")]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    (tmp_path / "home").mkdir()
    nbformat.write(nb, tmp_path / "home" / "bad.ipynb")
    done = run_job(tmp_path, storage, {"name": "bad", "notebook": "bad.ipynb"}, "bad-aaaaaa")
    assert done.returncode == 1
    assert "ValueError: bad data" in done.stdout
    assert storage.result("alice", "bad-aaaaaa")["exit_code"] == 1
    assert "notebook.ipynb" in {f.path for f in storage.list_outputs("alice", "bad-aaaaaa")}


def test_runner_over_https(tmp_path, ceph_s3):
    st = JobStorage(
        endpoint_url=ceph_s3.tls_endpoint,
        access_key=ceph_s3.alice_key,
        secret_key=ceph_s3.alice_secret,
        bucket=f"runner-tls-{uuid.uuid4().hex[:8]}",
        ca_bundle=ceph_s3.ca_bundle,
    )
    st.ensure_bucket()
    script = "import os; open(os.path.join(os.environ['GPULAB_OUTPUT_DIR'], 'big.bin'), 'wb').write(os.urandom(3 * 1024 * 1024))"
    done = run_job(
        tmp_path, st, {"name": "tls", "command": [sys.executable, "-c", script]}, "tls-aaaaaa"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sizes = {f.path: f.size for f in st.list_outputs("alice", "tls-aaaaaa")}
    assert (
        sizes["outputs/big.bin"] == 3 * 1024 * 1024
        and st.result("alice", "tls-aaaaaa")["upload"] == "ok"
    )


def test_s3_down_leaves_outputs_on_the_home(tmp_path, storage):
    """The credential points at a port nothing listens on (S3 down): the job still succeeds,
    its outputs and result.json stay on the home, and nothing reaches the real bucket."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = tmp_path / "home"
    home.mkdir()
    upload = tmp_path / "upload"
    upload.mkdir()
    cred = storage.upload_credential("alice", "down-aaaaaa", 3600)
    cred["url"] = f"http://127.0.0.1:{port}/{storage.bucket}"
    (upload / "credential.json").write_text(json.dumps(cred))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPULAB_")}
    script = (
        "import os; open(os.path.join(os.environ['GPULAB_OUTPUT_DIR'], 'm.txt'), 'w').write('m')"
    )
    env.update(
        GPULAB_JOB_ID="down-aaaaaa",
        GPULAB_JOB_SPEC=json.dumps({"name": "down", "command": [sys.executable, "-c", script]}),
        GPULAB_HOME=str(home),
        GPULAB_UPLOAD_DIR=str(upload),
        GPULAB_UPLOAD_BACKOFF="0.01",
        GPULAB_UPLOAD_RETRY_SECONDS="0",
    )
    done = subprocess.run([RUNNER], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert "UPLOAD PENDING" in done.stdout
    assert (home / "outputs/down/down-aaaaaa/m.txt").read_text() == "m"
    assert (
        json.loads((home / ".gpulab/jobs/down-aaaaaa/result.json").read_text())["upload"]
        == "pending"
    )
    assert storage.list_outputs("alice", "down-aaaaaa") == []


def test_upload_only_run_uploads_what_an_outage_left_on_the_home(tmp_path, storage):
    """A run that could not reach S3 leaves its plan on the home; ``--upload-only`` with a
    working credential uploads those outputs, the log and result.json (upload ok)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = (
        "import os; open(os.path.join(os.environ['GPULAB_OUTPUT_DIR'], 'm.txt'), 'w').write('m')"
    )
    spec = {"name": "later", "command": [sys.executable, "-c", script]}
    env = job_env(tmp_path, storage, spec, "later-aaaaaa")
    cred_file = Path(env["GPULAB_UPLOAD_DIR"]) / "credential.json"
    working = cred_file.read_text()
    down = json.loads(working)
    down["url"] = f"http://127.0.0.1:{port}/{storage.bucket}"
    cred_file.write_text(json.dumps(down))
    env.update(GPULAB_UPLOAD_BACKOFF="0.01", GPULAB_UPLOAD_RETRY_SECONDS="0")
    first = subprocess.run([RUNNER], env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0 and "UPLOAD PENDING" in first.stdout
    assert storage.result("alice", "later-aaaaaa") is None

    cred_file.write_text(working)
    again = subprocess.run(
        [RUNNER, "--upload-only"], env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stdout + again.stderr
    paths = {f.path for f in storage.list_outputs("alice", "later-aaaaaa")}
    assert {"outputs/m.txt", "log.txt", "result.json"} <= paths
    result = storage.result("alice", "later-aaaaaa")
    assert result is not None and result["upload"] == "ok" and result["exit_code"] == 0
    assert "job finished with exit code 0" in storage.read_log("alice", "later-aaaaaa").decode()


def test_same_name_jobs_running_together_upload_only_their_own_files(tmp_path, storage):
    """Two jobs named alike run at once (each waits until both have written): each uploads
    its own output and not the other's, and a re-run of the name uploads nothing stale."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    script = (
        "import os, pathlib, sys, time\n"
        "me = os.environ['GPULAB_JOB_ID']\n"
        "pathlib.Path(os.environ['GPULAB_OUTPUT_DIR'], me + '.txt').write_text(me)\n"
        f"barrier = pathlib.Path({str(barrier)!r})\n"
        "(barrier / me).touch()\n"
        "deadline = time.monotonic() + 120\n"
        "while len(list(barrier.iterdir())) < int(sys.argv[1]) and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
    )
    spec = {"name": "twin", "command": [sys.executable, "-c", script, "2"]}
    jobs = ["twin-aaaaaa", "twin-bbbbbb"]
    procs = [
        subprocess.Popen(
            [RUNNER],
            env=job_env(tmp_path, storage, spec, job_id),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=tmp_path,
        )
        for job_id in jobs
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, out
    again = run_job(
        tmp_path, storage, {**spec, "command": [*spec["command"][:-1], "3"]}, "twin-cccccc"
    )
    assert again.returncode == 0, again.stdout + again.stderr
    for job_id in [*jobs, "twin-cccccc"]:
        outputs = {
            f.path for f in storage.list_outputs("alice", job_id) if f.path.startswith("outputs/")
        }
        assert outputs == {f"outputs/{job_id}.txt"}, (job_id, outputs)
        assert storage.result("alice", job_id)["output_dir"] == f"outputs/twin/{job_id}"


def test_a_rerun_into_a_named_output_dir_uploads_only_its_own_files(tmp_path, storage):
    write = "import os, sys\nfor n in sys.argv[1:]:\n    open(os.path.join(os.environ['GPULAB_OUTPUT_DIR'], n), 'w').write(n)\n"
    spec = {"name": "sweep", "output_dir": "results", "command": [sys.executable, "-c", write]}
    first = {**spec, "command": [*spec["command"], "old.txt", "shared.txt"]}
    assert run_job(tmp_path, storage, first, "sweep-aaaaaa").returncode == 0
    second = {**spec, "command": [*spec["command"], "shared.txt", "new.txt"]}
    assert run_job(tmp_path, storage, second, "sweep-bbbbbb").returncode == 0
    paths = {f.path for f in storage.list_outputs("alice", "sweep-bbbbbb")}
    assert {"outputs/shared.txt", "outputs/new.txt"} <= paths  # rewritten, and new
    assert "outputs/old.txt" not in paths  # left there by the first run
    assert sorted(p.name for p in (tmp_path / "home/results").iterdir()) == [
        "new.txt",
        "old.txt",
        "shared.txt",
    ]
