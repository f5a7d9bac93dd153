"""GPU-aware idle culling: pure decisions (rules) and per-server bookkeeping (state).

See docs/culling.md. The culler service builds on these; nothing here does I/O.
"""

from .rules import (
    CullRules,
    Decision,
    GpuPoint,
    JobActivity,
    JobGpuIdle,
    JobIdleRules,
    ServerActivity,
    decide,
    decide_job,
    describe,
    would_cull,
)
from .state import CullStatus, GpuIdleTracker, ServerBook, ServerState, request_keep

__all__ = [
    "CullRules",
    "CullStatus",
    "Decision",
    "GpuIdleTracker",
    "GpuPoint",
    "JobActivity",
    "JobGpuIdle",
    "JobIdleRules",
    "ServerActivity",
    "ServerBook",
    "ServerState",
    "decide",
    "decide_job",
    "describe",
    "request_keep",
    "would_cull",
]
