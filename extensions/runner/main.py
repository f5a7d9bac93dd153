"""``gpulab-job-runner``: the entry point of every gpulab job container.

1. Reads the job's normalised spec from ``$GPULAB_JOB_SPEC`` (JSON; validated again here, so
   paths stay inside the home) and the job id from ``$GPULAB_JOB_ID``.
2. Runs the command (exec form, no shell) or executes the notebook with papermill and the
   parameters (kernel ``python3``; the executed notebook is written into the output dir).
   The child gets ``$GPULAB_OUTPUT_DIR``: the spec's ``output_dir``, else
   ``outputs/<name>/<job-id>``.
3. Tees the child's stdout and stderr (merged, in order) to its own stdout (the pod log) and
   to ``~/.gpulab/jobs/<job-id>/log.txt``.
4. Forwards SIGTERM/SIGINT/SIGHUP to the child's process group; SIGKILL after
   ``$GPULAB_KILL_AFTER`` seconds (default 30) if it is still running.
5. Uploads what this run wrote to the output dir (recursively: the files that are new or
   changed since the job started, by a snapshot taken before it; symlinks that leave the dir and
   non-regular files are skipped), the executed notebook, the log and finally ``result.json``
   through the presigned
   POST policy in ``$GPULAB_UPLOAD_DIR/credential.json`` (default ``/var/run/gpulab/upload``),
   with retries and exponential backoff (``$GPULAB_UPLOAD_ATTEMPTS``, default 5;
   ``$GPULAB_UPLOAD_BACKOFF``, default 2 s). When S3 stays unreachable the outputs stay on the
   home and ``~/.gpulab/jobs/<job-id>/result.json`` says ``"upload": "failed"``.
6. Exits with the child's exit code (killed by signal N: 128+N; runner errors: 125; program
   not found: 127; not executable: 126).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
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
    ENV_HOME,
    ENV_JOB_ID,
    ENV_JOB_SPEC,
    ENV_OUTPUT_DIR,
    ENV_UPLOAD_DIR,
    UPLOAD_MOUNT,
)

RUNNER_ERROR = 125
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

    @property
    def state_dir(self) -> Path:
        return self.home / ".gpulab" / "jobs" / self.job_id

    @property
    def output_rel(self) -> str:
        """The output dir relative to the home."""
        return self.spec.output_dir_for(self.job_id)

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
        )


# ----------------------------------------------------------------------------- upload


class UploadError(Exception):
    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


class Uploader:
    """Uploads files under the job's prefix with the presigned POST policy."""

    def __init__(
        self, credential: dict[str, Any], attempts: int, backoff: float, log: BinaryIO | None
    ) -> None:
        import httpx

        self.url = str(credential["url"])
        self.prefix = str(credential["prefix"])
        self.fields = {str(k): str(v) for k, v in dict(credential["fields"]).items()}
        self.max_bytes = int(credential.get("max_bytes") or 5 * 1024**3)
        self.attempts = attempts
        self.backoff = backoff
        self.log = log
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
        for attempt in range(1, self.attempts + 1):
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
                    return size
                detail = _s3_error(response.text)
                if response.status_code < 500:
                    raise UploadError(f"{name}: refused by S3 ({response.status_code} {detail})")
                last = f"S3 answered {response.status_code} {detail}"
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            if attempt < self.attempts:
                delay = self.backoff * 2 ** (attempt - 1)
                _say(
                    f"upload of {name} failed ({last}); retry {attempt}/{self.attempts - 1} in {delay:g}s",
                    self.log,
                )
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
                        "parameters": spec.parameters,
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
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.pop(ENV_JOB_SPEC, None)
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

    def upload_all(
        self,
        outcome: Outcome,
        executed: Path | None,
        log_path: Path,
        before: dict[str, FileSignature] | None = None,
    ) -> dict[str, Any]:
        """Upload this run's outputs: with ``before`` (a :meth:`snapshot`), only the files that
        are new or changed since it was taken."""
        cfg = self.config
        status: dict[str, Any] = {
            "upload": "pending",
            "uploaded": 0,
            "bytes": 0,
            "skipped": [],
            "failed": [],
        }
        cred_path = cfg.upload_dir / CREDENTIAL_FILE
        try:
            credential = json.loads(cred_path.read_text())
            uploader = Uploader(credential, cfg.attempts, cfg.backoff, self.log)
        except (OSError, ValueError, KeyError, TypeError, ssl.SSLError) as exc:
            status.update(
                upload="failed", error=f"no usable upload credential at {cred_path}: {exc}"
            )
            return status
        files, skipped = self._output_files(executed)
        status["skipped"] = skipped
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
        plan: list[tuple[str, Path | None]] = [(f"outputs/{rel}", path) for rel, path in ours]
        if executed is not None and executed.is_file():
            plan.append(("notebook.ipynb", executed))
        plan.append(("log.txt", None))
        unreachable = False
        try:
            for name, path in plan:
                if name == "log.txt":
                    _say(
                        f"uploading the log ({status['uploaded']} files uploaded so far)", self.log
                    )
                    if self.log is not None:
                        self.log.flush()
                    path = log_path
                size = path.stat().st_size if path is not None else 0
                if size > uploader.max_bytes:
                    status["skipped"].append(
                        f"{name} ({size} bytes, above the {uploader.max_bytes} limit)"
                    )
                    _say(
                        f"not uploaded: {name} is larger than {uploader.max_bytes} bytes", self.log
                    )
                    continue
                try:
                    sent = uploader.upload(name, path)
                except UploadError as exc:
                    status["failed"].append(name)
                    status["error"] = str(exc)
                    _say(f"upload failed: {exc}", self.log)
                    if exc.unreachable:
                        unreachable = True
                        break
                    continue
                status["uploaded"] += 1
                status["bytes"] += sent
                if name != "log.txt":
                    _say(f"uploaded {name} ({sent} bytes)", self.log)
            status["upload"] = "failed" if status["failed"] or "error" in status else "ok"
            if not unreachable:  # result.json last: its presence means the upload is over
                result = self._result(outcome, status)
                try:
                    uploader.upload("result.json", data=json.dumps(result, indent=2).encode())
                except UploadError as exc:
                    status.update(upload="failed", error=str(exc))
                    status["failed"].append("result.json")
        finally:
            uploader.close()
        return status

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
            **status,
        }

    # ---------------------------------------------------------------- all
    def run(self) -> int:
        cfg = self.config
        try:
            cfg.state_dir.mkdir(parents=True, exist_ok=True)
            cfg.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _say(f"cannot create the job's directories in the home: {exc}")
            return RUNNER_ERROR
        before = self.snapshot()
        log_path = cfg.state_dir / "log.txt"
        self.log = open(log_path, "ab")  # noqa: SIM115 - closed below
        _say(f"job {cfg.job_id} started at {_now().isoformat(timespec='seconds')}", self.log)
        try:
            outcome, executed = self.execute()
        except RunnerError as exc:
            outcome, executed = Outcome(exit_code=RUNNER_ERROR, error=str(exc)), None
            _say(str(exc), self.log)
        how = f"signal {outcome.signal}" if outcome.signal else f"exit code {outcome.exit_code}"
        _say(f"job finished with {how}", self.log)
        # result.json on the home first, so that it exists whatever happens to the upload
        result_path = cfg.state_dir / "result.json"
        result_path.write_text(json.dumps(self._result(outcome, {"upload": "pending"}), indent=2))
        status = self.upload_all(outcome, executed, log_path, before)
        result = self._result(outcome, status)
        result_path.write_text(json.dumps(result, indent=2))
        if status["upload"] == "ok":
            _say(f"outputs uploaded: {status['uploaded']} files, {status['bytes']} bytes")
        else:
            _say(
                f"UPLOAD FAILED: {status.get('error', 'unknown error')}. The outputs stay in "
                f"~/{cfg.output_rel} and the log and result in "
                f"~/{cfg.state_dir.relative_to(cfg.home)}/"
            )
        self.log.close()
        return outcome.exit_code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gpulab-job-runner",
        description="Run a gpulab job (spec in $GPULAB_JOB_SPEC) and upload its outputs.",
    )
    parser.add_argument("--spec-file", help="read the spec from this JSON file instead")
    parser.add_argument("--job-id", help="default: $GPULAB_JOB_ID")
    parser.add_argument("--home", help="default: $GPULAB_HOME or $HOME")
    parser.add_argument("--upload-dir", help=f"default: $GPULAB_UPLOAD_DIR or {DEFAULT_UPLOAD_DIR}")
    args = parser.parse_args(argv)
    try:
        config = RunnerConfig.from_env(os.environ, args)
    except (RunnerError, OSError) as exc:
        print(f"[gpulab] gpulab-job-runner: {exc}", file=sys.stderr, flush=True)
        return RUNNER_ERROR
    return Runner(config).run()


if __name__ == "__main__":
    sys.exit(main())
