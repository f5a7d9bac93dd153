"""``gpulab-job-runner``: the entry point of every gpulab job container.

1. Reads the job's normalised spec from ``$GPULAB_JOB_SPEC`` (JSON; validated again here, so
   paths stay inside the home) and the job id from ``$GPULAB_JOB_ID``.
2. Runs the command (exec form, no shell) or executes the notebook with papermill and the
   parameters (kernel ``python3``; the executed notebook is written into the output dir).
   The child gets ``$GPULAB_OUTPUT_DIR``: the spec's ``output_dir``, else
   ``outputs/<name>/<job-id>``, and ``$GPULAB_CHECKPOINT_DIR``: the job's own folder on the
   home (``~/.gpulab/jobs/<job-id>/checkpoint``), the same for every run of the job, so a run
   resumed after a preemption finds what the preempted run saved.
3. Tees the child's stdout and stderr (merged, in order) to its own stdout (the pod log) and
   to ``~/.gpulab/jobs/<job-id>/log.txt``.
4. Forwards SIGTERM/SIGINT/SIGHUP to the child's process group; SIGKILL after
   ``$GPULAB_KILL_AFTER`` seconds (default 30) if it is still running.
5. Uploads what this run wrote to the output dir (recursively: the files that are new or
   changed since the job started, by a snapshot taken before it; symlinks that leave the dir and
   non-regular files are skipped), the executed notebook, the log and finally ``result.json``
   through the presigned POST policy in ``$GPULAB_UPLOAD_DIR/credential.json`` (default
   ``/var/run/gpulab/upload``). The list of files is kept as ``~/.gpulab/jobs/<job-id>/
   upload.json``. While S3 is unreachable it retries with exponential backoff
   (``$GPULAB_UPLOAD_BACKOFF``, default 2 s, capped at 30 s) for at least
   ``$GPULAB_UPLOAD_ATTEMPTS`` tries (default 5) and ``$GPULAB_UPLOAD_RETRY_SECONDS`` (default
   60); then the outputs and the log stay on the home and ``~/.gpulab/jobs/<job-id>/
   result.json`` says ``"upload": "pending"``: the gateway later runs
   ``gpulab-job-runner --upload-only`` in an upload Job, which uploads the same files once S3
   answers (result.json in S3 is the truth). S3 refusing a file: ``"failed"``.
A rank of a multi-node job (``$GPULAB_RANK`` K of ``$GPULAB_NODES``) keeps its log and result
in its own folder (``~/.gpulab/jobs/<job-id>/rank-K/`` for K > 0) and uploads them under
``rank-K/``; before the command it waits (bounded) until rank 0's name (``$MASTER_ADDR``)
resolves. Outputs come from rank 0 only; with ``outputs_from: all`` rank K writes to
``<output dir>/rank-K`` and uploads that under ``rank-K/outputs/``.

6. Exits with the child's exit code (killed by signal N: 128+N; runner errors: 125; program
   not found: 127; not executable: 126).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import signal
import ssl
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from gpulab.wire.runner import (
    CREDENTIAL_FILE,
    ENV_CHECKPOINT_DIR,
    ENV_COMPLETION_INDEX,
    ENV_HOME,
    ENV_JOB_ID,
    ENV_JOB_SPEC,
    ENV_NODES,
    ENV_OUTPUT_DIR,
    ENV_PARAMETERS,
    ENV_RANK,
    ENV_RUN_INDEX,
    ENV_UPLOAD_DIR,
    LOG_FILE,
    METRICS_FILE,
    PLAN_FILE,
    RESULT_FILE,
    UPLOAD_MOUNT,
    job_checkpoint_path,
    job_state_dir,
    rank_prefix,
    run_name,
)

from .gpu_report import GpuReporter

RUNNER_ERROR = 125
UPLOAD_TEMPFAIL = 75  # EX_TEMPFAIL: the upload Job's pod fails and Kubernetes retries it
DEFAULT_UPLOAD_DIR = UPLOAD_MOUNT  # where the gateway mounts the credential
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class RunnerError(Exception):
    """The runner cannot start the job (bad spec, unusable paths)."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _say(message: str, log: BinaryIO | None = None) -> None:
    line = f"[gpulab] {message}\n".encode("utf-8", "replace")
    sys.stdout.buffer.write(line)
    sys.stdout.buffer.flush()
    if log is not None and not log.closed:
        log.write(line)
        log.flush()


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


# ----------------------------------------------------------------------------- config


@dataclass
class RunnerConfig:
    job_id: str
    spec: Any  # gpulab.hub.jobs.spec.JobSpec
    home: Path
    upload_dir: Path
    attempts: int = 5
    backoff: float = 2.0
    kill_after: float = 30.0
    retry_seconds: float = 60.0
    # A job is multi-node or a sweep, never both: at most one of rank > 0 and run_index is set.
    rank: int = 0  # a multi-node job's rank (its pod's completion index)
    nodes: int = 1
    rendezvous_seconds: float = 300.0  # how long a rank waits for rank 0's name
    run_index: int | None = None  # a sweep's run (the pod's completion index)

    @property
    def state_dir(self) -> Path:
        return self.home / self._in_run(job_state_dir(self.job_id, self.rank))

    @property
    def uploads_outputs(self) -> bool:
        """Rank 0 uploads the outputs; the others only with ``outputs_from: all``."""
        return self.rank == 0 or self.spec.outputs_from == "all"

    @property
    def own_output_folder(self) -> bool:
        """Whether this rank writes its outputs apart (``outputs_from: all``, rank K > 0)."""
        return self.rank > 0 and self.spec.outputs_from == "all"

    @property
    def run(self) -> str:
        """A sweep run's folder name (``run-<index>``), ``""`` for a job of one run."""
        return run_name(self.run_index) if self.run_index is not None else ""

    def _in_run(self, path: str) -> str:
        return f"{path}/{self.run}" if self.run else path

    @property
    def parameters(self) -> dict[str, Any]:
        """The parameters this run gets: a sweep run's set, else the spec's."""
        if self.run_index is None:
            return dict(self.spec.parameters)
        return self.spec.runs[self.run_index]

    @property
    def checkpoint_dir(self) -> Path:
        return self.home / self._in_run(job_checkpoint_path(self.job_id))

    @property
    def output_rel(self) -> str:
        """The output dir relative to the home (rank K's own with ``outputs_from: all``; a
        sweep run's: ``run-<index>`` in it)."""
        base = self._in_run(self.spec.output_dir_for(self.job_id))
        return f"{base}/rank-{self.rank}" if self.own_output_folder else base

    @property
    def output_dir(self) -> Path:
        return self.home / self.output_rel

    @classmethod
    def from_env(
        cls, env: dict[str, str] | os._Environ[str], args: argparse.Namespace
    ) -> RunnerConfig:
        from gpulab.hub.jobs.ids import is_job_id
        from gpulab.hub.jobs.spec import SpecError, parse_job_spec

        raw = Path(args.spec_file).read_text() if args.spec_file else env.get(ENV_JOB_SPEC)
        if not raw:
            raise RunnerError("no job spec: $GPULAB_JOB_SPEC is not set")
        try:
            spec = parse_job_spec(raw, "application/json")
        except SpecError as exc:
            raise RunnerError(f"invalid job spec: {exc}") from None
        job_id = args.job_id or env.get(ENV_JOB_ID, "")
        if not is_job_id(job_id):
            raise RunnerError(f"invalid or missing job id ($GPULAB_JOB_ID={job_id!r})")
        home = Path(args.home or env.get(ENV_HOME) or env.get("HOME") or "")
        if not home.is_absolute() or not home.is_dir():
            raise RunnerError(f"the home {str(home)!r} is not a directory")

        run_index = None
        if spec.sweep is not None:
            raw_index = env.get(ENV_COMPLETION_INDEX, "")
            if not raw_index.isdigit() or int(raw_index) >= len(spec.runs):
                raise RunnerError(
                    f"a sweep needs its run's index: ${ENV_COMPLETION_INDEX}={raw_index!r} is "
                    f"not one of 0..{len(spec.runs) - 1}"
                )
            run_index = int(raw_index)

        def number(name: str, default: float) -> float:
            try:
                return float(env.get(name, default))
            except ValueError:
                return default

        return cls(
            job_id=job_id,
            spec=spec,
            home=home,
            upload_dir=Path(args.upload_dir or env.get(ENV_UPLOAD_DIR) or DEFAULT_UPLOAD_DIR),
            attempts=max(1, int(number("GPULAB_UPLOAD_ATTEMPTS", 5))),
            backoff=max(0.0, number("GPULAB_UPLOAD_BACKOFF", 2.0)),
            kill_after=max(0.0, number("GPULAB_KILL_AFTER", 30.0)),
            retry_seconds=max(0.0, number("GPULAB_UPLOAD_RETRY_SECONDS", 60.0)),
            # an upload Job copies the env without the index: rank 0's, as it uploads rank 0's
            rank=max(0, int(number(ENV_RANK, 0) or 0)),
            nodes=max(1, int(number(ENV_NODES, 1) or 1)),
            rendezvous_seconds=max(0.0, number("GPULAB_RENDEZVOUS_SECONDS", 300.0)),
            run_index=run_index,
        )


# ----------------------------------------------------------------------------- upload


MAX_BACKOFF = 30.0  # seconds between two upload attempts, at most


class UploadError(Exception):
    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


class Uploader:
    """Uploads files under the job's prefix with the presigned POST policy."""

    def __init__(
        self,
        credential: dict[str, Any],
        attempts: int,
        backoff: float,
        log: BinaryIO | None,
        retry_seconds: float = 0.0,
        run: str = "",
    ) -> None:
        import httpx

        self.url = str(credential["url"])
        # a sweep run uploads into its own folder of the job's prefix (the policy allows any
        # key that starts with the job's prefix)
        self.prefix = str(credential["prefix"]) + (f"{run}/" if run else "")
        self.fields = {str(k): str(v) for k, v in dict(credential["fields"]).items()}
        self.max_bytes = int(credential.get("max_bytes") or 5 * 1024**3)
        self.attempts = attempts
        self.backoff = backoff
        self.log = log
        # S3 unreachable: keep retrying (backoff capped at MAX_BACKOFF) until this many
        # seconds have passed since the first failure, and at least ``attempts`` times.
        self.retry_seconds = retry_seconds
        self._failing_since: float | None = None
        verify: ssl.SSLContext | bool = True
        if credential.get("ca_bundle"):
            verify = ssl.create_default_context(cadata=str(credential["ca_bundle"]))
        self._httpx = httpx
        self.client = httpx.Client(
            verify=verify, timeout=httpx.Timeout(30.0, read=600.0, write=600.0)
        )

    def close(self) -> None:
        self.client.close()

    def upload(self, name: str, path: Path | None = None, data: bytes | None = None) -> int:
        """Upload ``path`` (or ``data``) as ``<prefix><name>``; returns the size. Retries
        connection errors and 5xx; raises UploadError."""
        httpx = self._httpx
        key = self.prefix + name
        if len(key.encode("utf-8")) > 1024:
            raise UploadError(f"{name}: the S3 key would be longer than 1024 bytes")
        last = ""
        attempt = 0
        while True:
            attempt += 1
            try:
                if path is not None:
                    with open(path, "rb") as fh:
                        size = os.fstat(fh.fileno()).st_size
                        response = self.client.post(
                            self.url,
                            data={**self.fields, "key": key},
                            files={
                                "file": (os.path.basename(name), fh, "application/octet-stream")
                            },
                        )
                else:
                    size = len(data or b"")
                    response = self.client.post(
                        self.url,
                        data={**self.fields, "key": key},
                        files={
                            "file": (
                                os.path.basename(name),
                                data or b"",
                                "application/octet-stream",
                            )
                        },
                    )
                if response.status_code in (200, 201, 204):
                    self._failing_since = None
                    return size
                detail = _s3_error(response.text)
                if response.status_code < 500:
                    raise UploadError(f"{name}: refused by S3 ({response.status_code} {detail})")
                last = f"S3 answered {response.status_code} {detail}"
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            now = time.monotonic()
            if self._failing_since is None:
                self._failing_since = now
            waited = now - self._failing_since
            if attempt >= self.attempts and waited >= self.retry_seconds:
                break
            delay = min(self.backoff * 2 ** (attempt - 1), MAX_BACKOFF)
            if attempt >= self.attempts:  # only the time window is left
                delay = min(delay, max(self.retry_seconds - waited, 0.0))
            _say(f"upload of {name} failed ({last}); retry {attempt} in {delay:g}s", self.log)
            time.sleep(delay)
        raise UploadError(f"{name}: {last}", unreachable=True)


def _s3_error(text: str) -> str:
    import re

    code = re.search(r"<Code>([^<]{0,100})</Code>", text or "")
    msg = re.search(r"<Message>([^<]{0,300})</Message>", text or "")
    return ": ".join(m.group(1) for m in (code, msg) if m) or "no detail"


# ----------------------------------------------------------------------------- outputs

# What identifies one version of a file: a rewrite changes the times (and the change time
# cannot be set back, so a copy that keeps an old modification time still counts as new).
FileSignature = tuple[int, int, int, int]  # inode, size, mtime_ns, ctime_ns
OutputFile = tuple[str, Path, FileSignature]  # path in the output dir, real path, signature


def _signature(st: os.stat_result) -> FileSignature:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


# ----------------------------------------------------------------------------- running


@dataclass
class Outcome:
    exit_code: int
    signal: int | None = None
    error: str | None = None
    started: dt.datetime = field(default_factory=_now)
    finished: dt.datetime = field(default_factory=_now)


class Runner:
    def __init__(self, config: RunnerConfig) -> None:
        self.config = config
        self.child: subprocess.Popen[bytes] | None = None
        self.received: int | None = None
        self._kill_timer: threading.Timer | None = None
        self.log: BinaryIO | None = None

    # ---------------------------------------------------------------- signals
    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.received is None:
            self.received = signum
        child = self.child
        if child is None or child.poll() is not None:
            return
        try:
            os.killpg(child.pid, signum)
        except ProcessLookupError:
            return
        if self._kill_timer is None:
            self._kill_timer = threading.Timer(self.config.kill_after, self._kill)
            self._kill_timer.daemon = True
            self._kill_timer.start()

    def _kill(self) -> None:
        child = self.child
        if child is not None and child.poll() is None:
            _say(f"the job did not stop within {self.config.kill_after:g}s; killing it", self.log)
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    # ---------------------------------------------------------------- child
    def _argv(self) -> tuple[list[str], Path, Path | None]:
        cfg, spec = self.config, self.config.spec
        if spec.notebook is not None:
            notebook = cfg.home / spec.notebook
            executed = cfg.output_dir / Path(spec.notebook).name
            cwd = cfg.home / spec.working_dir if spec.working_dir else notebook.parent
            params = cfg.state_dir / "nbexec.json"
            params.write_text(
                json.dumps(
                    {
                        "input": str(notebook),
                        "output": str(executed),
                        "parameters": cfg.parameters,
                        "cwd": str(cwd),
                        "kernel": "python3",
                    },
                    ensure_ascii=False,
                )
            )
            return (
                [sys.executable, "-m", "gpulab.extensions.runner.nbexec", str(params)],
                cwd,
                executed,
            )
        cwd = cfg.home / spec.working_dir if spec.working_dir else cfg.home
        return [*spec.command, *spec.args], cwd, None

    def _tee(self, pipe: BinaryIO) -> None:
        out = sys.stdout.buffer
        fd = pipe.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out.write(chunk)
            out.flush()
            if self.log is not None:
                self.log.write(chunk)
                self.log.flush()

    def execute(self) -> tuple[Outcome, Path | None]:
        cfg = self.config
        argv, cwd, executed = self._argv()
        outcome = Outcome(exit_code=RUNNER_ERROR)
        if not cwd.is_dir():
            outcome.error = f"the working directory {cwd} does not exist"
            _say(outcome.error, self.log)
            outcome.finished = _now()
            return outcome, executed
        env = dict(os.environ)
        env[ENV_OUTPUT_DIR] = str(cfg.output_dir)
        env[ENV_CHECKPOINT_DIR] = str(cfg.checkpoint_dir)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.pop(ENV_JOB_SPEC, None)
        if cfg.run_index is not None:
            env[ENV_RUN_INDEX] = str(cfg.run_index)
            env[ENV_PARAMETERS] = json.dumps(cfg.parameters, ensure_ascii=False)
        for sig in _FORWARDED:
            signal.signal(sig, self._on_signal)
        try:
            self.child = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except FileNotFoundError:
            outcome.exit_code, outcome.error = 127, f"{argv[0]}: command not found"
        except PermissionError:
            outcome.exit_code, outcome.error = 126, f"{argv[0]}: permission denied"
        except OSError as exc:
            outcome.exit_code, outcome.error = 126, f"{argv[0]}: cannot run: {exc.strerror}"
        if self.child is None:
            _say(outcome.error or "cannot start the job", self.log)
            outcome.finished = _now()
            return outcome, executed
        if self.received is not None:  # a signal arrived before the child existed
            self._on_signal(self.received, None)
        assert self.child.stdout is not None
        tee = threading.Thread(target=self._tee, args=(self.child.stdout,), daemon=True)
        tee.start()
        rc = self.child.wait()
        tee.join(timeout=5)
        if tee.is_alive():  # a background process still holds the pipe: end the group
            try:
                os.killpg(self.child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            tee.join(timeout=5)
        if self._kill_timer is not None:
            self._kill_timer.cancel()
        outcome.finished = _now()
        if rc < 0:
            outcome.signal = -rc
            outcome.exit_code = 128 - rc
        else:
            outcome.exit_code = rc
        return outcome, executed

    # ---------------------------------------------------------------- upload
    def snapshot(self) -> dict[str, FileSignature]:
        """What the output dir holds before the job runs: files of earlier runs, or of other
        jobs that write there, which this run must not upload as its own."""
        files, _ = self._output_files(None)
        return {rel: sig for rel, _, sig in files}

    def _output_files(self, skip: Path | None) -> tuple[list[OutputFile], list[str]]:
        root = self.config.output_dir
        files: list[OutputFile] = []
        skipped: list[str] = []
        if not root.is_dir():
            return files, skipped
        real_root = os.path.realpath(root)
        if not _within(real_root, os.path.realpath(self.config.home)):
            return files, [f"{self.config.output_rel} (it leads outside the home)"]
        skip_real = os.path.realpath(skip) if skip is not None else None
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            for d in dirnames:
                if os.path.islink(os.path.join(dirpath, d)):
                    skipped.append(
                        os.path.relpath(os.path.join(dirpath, d), root) + "/ (a symlink)"
                    )
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                real = os.path.realpath(path)
                if not _within(real, real_root):
                    skipped.append(f"{rel} (a symlink leaving the output dir)")
                    continue
                if skip_real is not None and real == skip_real:
                    continue
                try:
                    st = os.stat(real)
                    rel.encode("utf-8")
                except (OSError, UnicodeEncodeError):
                    skipped.append(f"{rel!r} (unreadable or not a UTF-8 name)")
                    continue
                if not stat.S_ISREG(st.st_mode):
                    skipped.append(f"{rel} (not a regular file)")
                    continue
                files.append((rel.replace(os.sep, "/"), Path(real), _signature(st)))
        return files, skipped

    def plan(
        self, executed: Path | None, before: dict[str, FileSignature] | None = None
    ) -> tuple[list[tuple[str, Path]], list[str]]:
        """What this run uploads (S3 name, file), the log excepted, and what it skips: with
        ``before`` (a :meth:`snapshot`), only the files new or changed since it was taken."""
        cfg = self.config
        if not cfg.uploads_outputs:
            return [], []
        files, skipped = self._output_files(executed)
        if cfg.rank == 0 and cfg.nodes > 1 and cfg.spec.outputs_from == "all":
            # the other ranks' folders: each rank uploads its own
            files = [f for f in files if not _other_rank_file(f[0])]
        for item in skipped:
            _say(f"not uploaded: {item}", self.log)
        before = before or {}
        ours = [(rel, path) for rel, path, sig in files if before.get(rel) != sig]
        if len(ours) < len(files):
            _say(
                f"not uploaded: {len(files) - len(ours)} file(s) already in ~/{cfg.output_rel} "
                "before the job started and not changed by it",
                self.log,
            )
        plan: list[tuple[str, Path]] = [(f"outputs/{rel}", path) for rel, path in ours]
        if executed is not None and executed.is_file():
            plan.append(("notebook.ipynb", executed))
        return plan, skipped

    def save_plan(self, plan: list[tuple[str, Path]], skipped: list[str]) -> None:
        """Keep the plan on the home: an upload-only run after an S3 outage uploads exactly
        these files (the snapshot that chose them is gone with the pod)."""
        home = os.path.realpath(self.config.home)
        entries = [
            {"name": name, "path": os.path.relpath(os.path.realpath(path), home)}
            for name, path in plan
        ]
        (self.config.state_dir / PLAN_FILE).write_text(
            json.dumps({"files": entries, "skipped": skipped}, indent=2)
        )

    def load_plan(self) -> tuple[list[tuple[str, Path]], list[str]]:
        """The plan a finished run saved (files that left the home or were replaced by a
        symlink since are skipped, never followed out of the home)."""
        cfg = self.config
        raw = json.loads((cfg.state_dir / PLAN_FILE).read_text())
        home = os.path.realpath(cfg.home)
        plan: list[tuple[str, Path]] = []
        skipped = [str(x) for x in raw.get("skipped") or []]
        for entry in raw.get("files") or []:
            name, rel = str(entry["name"]), str(entry["path"])
            real = os.path.realpath(os.path.join(home, rel))
            if not _within(real, home) or not os.path.isfile(real):
                skipped.append(f"{name} (no longer a file in the home)")
                continue
            plan.append((name, Path(real)))
        return plan, skipped

    def upload_all(
        self,
        outcome: Outcome,
        executed: Path | None,
        log_path: Path,
        before: dict[str, FileSignature] | None = None,
    ) -> dict[str, Any]:
        """Upload this run's outputs, the log and result.json (see :meth:`plan`)."""
        plan, skipped = self.plan(executed, before)
        self.save_plan(plan, skipped)
        return self.upload_plan(self._result(outcome, {}), plan, skipped, log_path)

    def upload_plan(
        self,
        result: dict[str, Any],
        plan: list[tuple[str, Path]],
        skipped: list[str],
        log_path: Path,
        *,
        log: bool = True,
    ) -> dict[str, Any]:
        """Upload ``plan``, then the log (with ``log``), then ``result`` (with the upload status) as
        result.json. S3 unreachable past the retry window: ``upload`` stays ``pending`` (the
        files wait on the home for a later upload-only run); S3 refusing a file: ``failed``."""
        cfg = self.config
        status: dict[str, Any] = {
            "upload": "pending",
            "uploaded": 0,
            "bytes": 0,
            "skipped": list(skipped),
            "failed": [],
        }
        cred_path = cfg.upload_dir / CREDENTIAL_FILE
        try:
            credential = json.loads(cred_path.read_text())
            uploader = Uploader(
                credential,
                cfg.attempts,
                cfg.backoff,
                self.log,
                retry_seconds=cfg.retry_seconds,
                run=cfg.run,
            )
            uploader.prefix += rank_prefix(cfg.rank)  # rank K's files under rank-K/
        except (OSError, ValueError, KeyError, TypeError, ssl.SSLError) as exc:
            status["error"] = f"no usable upload credential at {cred_path}: {exc}"
            return status
        steps: list[tuple[str, Path]] = [*plan, *([("log.txt", log_path)] if log else [])]
        unreachable = False
        try:
            for name, path in steps:
                if name == "log.txt":
                    _say(
                        f"uploading the log ({status['uploaded']} files uploaded so far)", self.log
                    )
                    if self.log is not None:
                        self.log.flush()
                size = path.stat().st_size if path.exists() else 0
                if size > uploader.max_bytes:
                    status["skipped"].append(
                        f"{name} ({size} bytes, above the {uploader.max_bytes} limit)"
                    )
                    _say(
                        f"not uploaded: {name} is larger than {uploader.max_bytes} bytes", self.log
                    )
                    continue
                try:
                    sent = (
                        uploader.upload(name, path)
                        if path.exists()
                        else uploader.upload(name, data=b"")
                    )
                except UploadError as exc:
                    status["error"] = str(exc)
                    status["failed"].append(name)
                    _say(f"upload failed: {exc}", self.log)
                    if exc.unreachable:
                        unreachable = True
                        break
                    continue
                status["uploaded"] += 1
                status["bytes"] += sent
                if name != "log.txt":
                    _say(f"uploaded {name} ({sent} bytes)", self.log)
            if not unreachable:  # result.json last: its presence means the upload is over
                status["upload"] = "failed" if status["failed"] else "ok"
                if status["upload"] == "ok":
                    status.pop("error", None)
                final = {**result, **status}
                try:
                    uploader.upload("result.json", data=json.dumps(final, indent=2).encode())
                except UploadError as exc:
                    status["error"] = str(exc)
                    if exc.unreachable:
                        status["upload"] = "pending"
                    else:
                        status["upload"] = "failed"
                        status["failed"].append("result.json")
        finally:
            uploader.close()
        return status

    def upload_only(self) -> int:
        """The upload Job's run (``--upload-only``): upload what a finished run of this job
        left on the home, from its saved plan. Writes nothing to the home (it may be mounted
        read-only); the truth is result.json in S3. Exit 0 once uploaded, 75 (EX_TEMPFAIL)
        while S3 is unreachable, 1 when S3 refused something."""
        cfg = self.config
        if not (cfg.state_dir / RESULT_FILE).exists():
            # the job never started (cancelled while it waited): there is nothing to upload
            # but the record that it is so, which ends the upload as truthfully "ok"
            _say(f"job {cfg.job_id} left nothing on the home (it never started)")
            result = {"job_id": cfg.job_id, "error": "the job never started"}
            status = self.upload_plan(result, [], [], cfg.state_dir / LOG_FILE, log=False)
            return 0 if status["upload"] == "ok" else UPLOAD_TEMPFAIL
        try:
            result = json.loads((cfg.state_dir / RESULT_FILE).read_text())
            plan, skipped = self.load_plan()
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            _say(f"nothing to upload: the finished run left no usable plan ({exc})")
            return 1
        if not isinstance(result, dict):
            _say("nothing to upload: the finished run's result.json is not an object")
            return 1
        _say(f"uploading the outputs of job {cfg.job_id} kept on the home ({len(plan)} files)")
        status = self.upload_plan(result, plan, skipped, cfg.state_dir / LOG_FILE)
        if status["upload"] == "ok":
            _say(f"outputs uploaded: {status['uploaded']} files, {status['bytes']} bytes")
            return 0
        _say(f"upload {status['upload']}: {status.get('error', 'unknown error')}")
        return UPLOAD_TEMPFAIL if status["upload"] == "pending" else 1

    def _result(self, outcome: Outcome, status: dict[str, Any]) -> dict[str, Any]:
        cfg = self.config
        return {
            "job_id": cfg.job_id,
            "exit_code": outcome.exit_code,
            "signal": outcome.signal,
            "received_signal": self.received,
            "error": outcome.error,
            "started": outcome.started.isoformat(),
            "finished": outcome.finished.isoformat(),
            "duration_seconds": round((outcome.finished - outcome.started).total_seconds(), 3),
            "output_dir": cfg.output_rel,
            **(
                {"run": cfg.run_index, "parameters": cfg.parameters}
                if cfg.run_index is not None
                else {}
            ),
            "metrics": self.metrics(),
            **status,
        }

    def metrics(self) -> dict[str, Any] | None:
        """The metrics the program wrote (``$GPULAB_OUTPUT_DIR/result.json``, a JSON object):
        its number, string and boolean values, at most 64 of them; ``None`` without one."""
        path = self.config.output_dir / METRICS_FILE
        try:
            if not path.is_file() or path.stat().st_size > 64 * 1024:
                return None
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        kept = {
            str(k)[:64]: v
            for k, v in data.items()
            if (isinstance(v, int | str | bool) and not (isinstance(v, str) and len(v) > 256))
            or (isinstance(v, float) and math.isfinite(v))
        }
        return dict(list(kept.items())[:64])

    # ---------------------------------------------------------------- all
    def run(self) -> int:
        cfg = self.config
        try:
            cfg.state_dir.mkdir(parents=True, exist_ok=True)
            cfg.output_dir.mkdir(parents=True, exist_ok=True)
            cfg.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _say(f"cannot create the job's directories in the home: {exc}")
            return RUNNER_ERROR
        before = self.snapshot()
        log_path = cfg.state_dir / LOG_FILE
        self.log = open(log_path, "ab")  # noqa: SIM115 - closed below
        _say(f"job {cfg.job_id} started at {_now().isoformat(timespec='seconds')}", self.log)
        reporter = GpuReporter.from_env(os.environ, cfg.job_id, cfg.upload_dir, cfg.spec.node_gpus)
        if reporter is not None:
            reporter.start()
        if cfg.nodes > 1:
            _say(f"rank {cfg.rank} of {cfg.nodes}", self.log)
        try:
            if cfg.nodes > 1:
                wait_for_name(os.environ.get("MASTER_ADDR", ""), cfg.rendezvous_seconds)
            outcome, executed = self.execute()
        except RunnerError as exc:
            outcome, executed = Outcome(exit_code=RUNNER_ERROR, error=str(exc)), None
            _say(str(exc), self.log)
        finally:
            if reporter is not None:
                reporter.stop()
        how = f"signal {outcome.signal}" if outcome.signal else f"exit code {outcome.exit_code}"
        _say(f"job finished with {how}", self.log)
        # result.json on the home first, so that it exists whatever happens to the upload
        result_path = cfg.state_dir / RESULT_FILE
        result_path.write_text(json.dumps(self._result(outcome, {"upload": "pending"}), indent=2))
        status = self.upload_all(outcome, executed, log_path, before)
        result = self._result(outcome, status)
        result_path.write_text(json.dumps(result, indent=2))
        state_rel = cfg.state_dir.relative_to(cfg.home)
        if status["upload"] == "ok":
            _say(f"outputs uploaded: {status['uploaded']} files, {status['bytes']} bytes")
        elif status["upload"] == "pending":
            _say(
                f"UPLOAD PENDING: {status.get('error', 'S3 is unreachable')}. The outputs stay "
                f"in ~/{cfg.output_rel} and the log in ~/{state_rel}/; gpulab uploads them "
                "once S3 answers again"
            )
        else:
            _say(
                f"UPLOAD FAILED: {status.get('error', 'unknown error')}. The outputs stay in "
                f"~/{cfg.output_rel} and the log and result in ~/{state_rel}/"
            )
        self.log.close()
        return outcome.exit_code


def _other_rank_file(rel: str) -> bool:
    top = rel.split("/", 1)[0]
    return "/" in rel and top.startswith("rank-") and top[5:].isdigit()


def wait_for_name(name: str, seconds: float) -> None:
    """Wait until ``name`` (rank 0's) resolves: its pod may start after this one, and cluster
    DNS publishes it only then. RunnerError after ``seconds``."""
    import socket

    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.getaddrinfo(name, None)
            return
        except (OSError, UnicodeError) as exc:
            if not name or time.monotonic() >= deadline:
                what = name or "$MASTER_ADDR unset"
                raise RunnerError(f"rank 0 ({what}) did not resolve: {exc}") from None
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gpulab-job-runner",
        description="Run a gpulab job (spec in $GPULAB_JOB_SPEC) and upload its outputs.",
    )
    parser.add_argument("--spec-file", help="read the spec from this JSON file instead")
    parser.add_argument("--job-id", help="default: $GPULAB_JOB_ID")
    parser.add_argument("--home", help="default: $GPULAB_HOME or $HOME")
    parser.add_argument("--upload-dir", help=f"default: $GPULAB_UPLOAD_DIR or {DEFAULT_UPLOAD_DIR}")
    parser.add_argument(
        "--upload-only",
        action="store_true",
        help="do not run the job: upload what its finished run left on the home",
    )
    args = parser.parse_args(argv)
    try:
        config = RunnerConfig.from_env(os.environ, args)
    except (RunnerError, OSError) as exc:
        print(f"[gpulab] gpulab-job-runner: {exc}", file=sys.stderr, flush=True)
        return RUNNER_ERROR
    runner = Runner(config)
    return runner.upload_only() if args.upload_only else runner.run()


if __name__ == "__main__":
    sys.exit(main())
