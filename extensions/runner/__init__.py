"""The job runner (``gpulab-job-runner``): runs a job's command or notebook, tees its log and
uploads the outputs through the job's presigned POST policies. See docs/jobs.md."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point (imports lazily so that ``import gpulab.extensions.runner``
    stays cheap)."""
    from .main import main as _main

    return _main(argv)


__all__ = ["main"]
