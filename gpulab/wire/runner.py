"""The contract between a job's pod (built by the gateway) and ``gpulab-job-runner`` (run in it).

The gateway's manifest sets these variables and mounts the upload credential; the runner reads
them. Changing one side without the other breaks every job, so both import the names from here.
"""

from __future__ import annotations

__all__ = [
    "CREDENTIAL_FILE",
    "ENV_GATEWAY_URL",
    "ENV_GPU_TYPE",
    "ENV_GPUS",
    "ENV_HOME",
    "ENV_IMAGE",
    "ENV_JOB_ID",
    "ENV_JOB_SPEC",
    "ENV_OUTPUT_DIR",
    "ENV_UPLOAD_DIR",
    "RUNNER_COMMAND",
    "UPLOAD_MOUNT",
]

# The container's command (exec form, no arguments): the console script of the same name.
RUNNER_COMMAND = ["gpulab-job-runner"]
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
# Set by the runner for the job's own process: where to write outputs.
ENV_OUTPUT_DIR = "GPULAB_OUTPUT_DIR"
