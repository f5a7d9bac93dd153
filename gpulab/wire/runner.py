"""The contract between a job's pod (built by the gateway) and ``gpulab-job-runner`` (run in it).

The gateway's manifest sets these variables and mounts the upload credential; the runner reads
them. Changing one side without the other breaks every job, so both import the names from here.
"""

from __future__ import annotations

__all__ = [
    "CREDENTIAL_FILE",
    "ENV_CHECKPOINT_DIR",
    "ENV_COMPLETION_INDEX",
    "ENV_CULLER_URL",
    "ENV_REPORT_INTERVAL",
    "REPORT_TOKEN_FILE",
    "REPORT_TOKEN_HEADER",
    "ENV_GATEWAY_URL",
    "ENV_GPU_TYPE",
    "ENV_GPUS",
    "ENV_HOME",
    "ENV_IMAGE",
    "ENV_JOB_ID",
    "ENV_JOB_SPEC",
    "ENV_OUTPUT_DIR",
    "ENV_PARAMETERS",
    "ENV_RUN_INDEX",
    "ENV_UPLOAD_DIR",
    "LOG_FILE",
    "METRICS_FILE",
    "PLAN_FILE",
    "RESULT_FILE",
    "RUNNER_COMMAND",
    "UPLOAD_MOUNT",
    "UPLOAD_ONLY_COMMAND",
    "UPLOAD_STATES",
    "job_checkpoint_path",
    "job_log_path",
    "job_state_dir",
    "rank_prefix",
    "run_name",
    "ENV_NODES",
    "ENV_RANK",
]

# The container's command (exec form, no arguments): the console script of the same name.
RUNNER_COMMAND = ["gpulab-job-runner"]
# The command of the upload Job the gateway creates when a job's pod ended with its upload
# still pending: upload what the finished run left on the home, nothing else.
UPLOAD_ONLY_COMMAND = [*RUNNER_COMMAND, "--upload-only"]
# Where the job's upload credential Secret is mounted, and the file in it.
UPLOAD_MOUNT = "/var/run/gpulab/upload"
CREDENTIAL_FILE = "credential.json"

# Set on the job's container by the gateway.
ENV_JOB_ID = "GPULAB_JOB_ID"
ENV_JOB_SPEC = "GPULAB_JOB_SPEC"  # the normalised spec, JSON
ENV_HOME = "GPULAB_HOME"
ENV_UPLOAD_DIR = "GPULAB_UPLOAD_DIR"
ENV_IMAGE = "GPULAB_IMAGE"
ENV_GPUS = "GPULAB_GPUS"
ENV_GPU_TYPE = "GPULAB_GPU_TYPE"
ENV_GATEWAY_URL = "GPULAB_GATEWAY_URL"
# GPU jobs: where the runner reports its GPUs' utilisation (the culler's URL, ending in "/"),
# how often (seconds), and the file of the upload mount holding the job's report token.
ENV_CULLER_URL = "GPULAB_CULLER_URL"
ENV_REPORT_INTERVAL = "GPULAB_REPORT_INTERVAL"
REPORT_TOKEN_FILE = "report-token"
REPORT_TOKEN_HEADER = "X-Gpulab-Job-Token"
# A multi-node job's: how many ranks, and this pod's rank (0 for a one-node job).
ENV_NODES = "GPULAB_NODES"
ENV_RANK = "GPULAB_RANK"
# Set by the runner for the job's own process: where to write outputs.
ENV_OUTPUT_DIR = "GPULAB_OUTPUT_DIR"
# Set by the runner for the job's own process: a folder on the home that belongs to this job
# and is kept when the job is preempted and requeued, so a resumed run finds what the earlier
# one saved there (docs/scheduling.md, "Checkpoints"). Not uploaded with the outputs.
ENV_CHECKPOINT_DIR = "GPULAB_CHECKPOINT_DIR"
# A sweep (an Indexed Job): Kubernetes' Job controller sets the pod's completion index; the
# runner picks that run's parameter set from the spec, gives a command's process its
# parameters as JSON and its index, and keeps the run's state, log and outputs in a
# ``run-<index>`` folder of their own (on the home and under the job's S3 prefix).
ENV_COMPLETION_INDEX = "JOB_COMPLETION_INDEX"
ENV_PARAMETERS = "GPULAB_PARAMETERS"
ENV_RUN_INDEX = "GPULAB_RUN_INDEX"
# A run's metrics: the program or notebook writes this JSON object of numbers into its output
# dir ($GPULAB_OUTPUT_DIR/result.json); the runner copies it as "metrics" into its own
# result.json, which the sweep's results table reads.
METRICS_FILE = "result.json"

# What the runner keeps on the home, under ~/.gpulab/jobs/<job-id>/ (relative to the home):
# the log (archived to S3 as log.txt), result.json (its "upload" says pending | ok | failed)
# and the upload plan (the output files this run wrote, for a later upload-only run).
LOG_FILE = "log.txt"
RESULT_FILE = "result.json"
PLAN_FILE = "upload.json"
# result.json's "upload": pending until everything reached S3 (or S3 refused a file).
UPLOAD_STATES = ("pending", "ok", "failed")


def rank_prefix(rank: int) -> str:
    """Where a rank's log, result and (with ``outputs_from: all``) outputs go, in the job's
    S3 prefix and its state folder: rank 0 where a one-node job's go, rank K under
    ``rank-K/``."""
    return f"rank-{rank}/" if rank > 0 else ""


def job_state_dir(job_id: str, rank: int = 0) -> str:
    """The job's state folder (a rank's, for rank K > 0), relative to the owner's home."""
    return f".gpulab/jobs/{job_id}/{rank_prefix(rank)}".rstrip("/")


def run_name(index: int) -> str:
    """A sweep run's folder (``run-<index>``): in the job's state dir and output dir on the
    home, and under the job's S3 prefix."""
    return f"run-{index}"


def job_checkpoint_path(job_id: str) -> str:
    """The job's checkpoint folder (``$GPULAB_CHECKPOINT_DIR``), relative to the home: the same
    for every run of the job (retries, and runs after a preemption)."""
    return f"{job_state_dir(job_id)}/checkpoint"


def job_log_path(job_id: str) -> str:
    """The job's log on the home, relative to it: kept there until (and after) it is archived."""
    return f"{job_state_dir(job_id)}/{LOG_FILE}"
