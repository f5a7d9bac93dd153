"""A parameter sweep's runs (pure): which parameter set each index of the Indexed Job gets.

A spec's ``sweep`` is either a **grid**, a mapping from parameter names to lists of values
(every combination runs, in the order of the names sorted alphabetically, the last one
varying fastest), or a
**list** of parameter sets (each runs as written). Each run's parameters are the spec's
``parameters`` with the run's set merged over them. Run ``k`` is index ``k`` of the Job: the
gateway, the runner (from ``$JOB_COMPLETION_INDEX``) and the API compute the same list from
the same spec, so no list of parameter sets travels beside the spec.

At most :data:`MAX_SWEEP_RUNS` runs: a fixed bound (not a policy key), because every run is a
Job index whose state the gateway shows and whose outputs it lists; a wider search is
several sweeps.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from gpulab.wire.runner import run_name

__all__ = ["MAX_SWEEP_RUNS", "run_count", "run_name", "sweep_runs"]

MAX_SWEEP_RUNS = 64


def run_count(sweep: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]]) -> int:
    """How many runs ``sweep`` makes (without building them: a hostile grid may be huge)."""
    if isinstance(sweep, Mapping):
        count = 1
        for values in sweep.values():
            count *= len(values)
        return count
    return len(sweep)


def sweep_runs(
    sweep: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]] | None,
    parameters: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Each run's parameters, in index order (``[]`` for a spec without a sweep)."""
    if sweep is None:
        return []
    if isinstance(sweep, Mapping):
        names = sorted(sweep)  # the spec travels as JSON with sorted keys: one order
        sets: list[dict[str, Any]] = [
            dict(zip(names, values, strict=True))
            for values in itertools.product(*(sweep[n] for n in names))
        ]
    else:
        sets = [dict(item) for item in sweep]
    return [{**parameters, **one} for one in sets]
