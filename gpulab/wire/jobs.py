"""A job's state as the jobs gateway answers it, and the sets of states clients act on."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["ACTIVE_STATES", "CANCELLABLE_STATES", "JOB_STATES", "TERMINAL_STATES", "JobState"]

# Queued: accepted, waiting in its Kueue queue for quota (the job holds nothing yet).
JobState = Literal["Queued", "Pending", "Running", "Succeeded", "Failed", "Cancelled"]
# In the order people read them (the gateway's error messages list them so).
JOB_STATES: tuple[JobState, ...] = get_args(JobState)
# No pod will run again.
TERMINAL_STATES: frozenset[JobState] = frozenset({"Succeeded", "Failed", "Cancelled"})
# Still waits or runs: holds (or will hold) its GPUs.
ACTIVE_STATES: tuple[JobState, ...] = tuple(s for s in JOB_STATES if s not in TERMINAL_STATES)
# Cancelling means something only for a job that still waits or runs.
CANCELLABLE_STATES: tuple[JobState, ...] = ACTIVE_STATES
