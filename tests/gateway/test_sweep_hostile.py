"""Hostile sweeps at submit over HTTP: never a 5xx, never a Job for an invalid sweep, and a
sweep the gateway accepts is one the spec parser accepts (its Job is then cancelled)."""

from __future__ import annotations

import json

import httpx
import pytest
from gateway_testlib import command_job
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = [pytest.mark.e2e, pytest.mark.ceph]

SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
)
NAMES = st.sampled_from(
    ["lr", "batch", "class", "2x", "", "a b", "_ok", "ÄÖ", "x" * 300]
) | st.text(max_size=8)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=2),
    max_leaves=8,
)
GRIDS = st.dictionaries(NAMES, st.lists(VALUES, max_size=9) | VALUES, max_size=4)
LISTS = st.lists(st.dictionaries(NAMES, VALUES, max_size=3) | VALUES, max_size=70)
SWEEPS = GRIDS | LISTS | VALUES


def _jobs(gw) -> int:
    selector = "app.kubernetes.io/managed-by=gpulab,gpulab.io/user=carol,!gpulab.io/upload-for"
    return len(gw.kubesim.jobs(selector))


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    sweep=SWEEPS,
    max_parallel=st.none() | st.integers(-2, 80) | st.text(max_size=3),
    parameters=st.none() | st.dictionaries(NAMES, VALUES, max_size=2),
)
def test_hostile_sweeps_never_5xx_never_a_job(gw, sweep, max_parallel, parameters):
    spec = command_job("hostile-sweep", "print(1)", sweep=sweep)
    if max_parallel is not None:
        spec["max_parallel"] = max_parallel
    if parameters is not None:
        spec["parameters"] = parameters
    before = _jobs(gw)
    with httpx.Client(
        base_url=gw.base, headers={"Authorization": f"token {gw.tokens['carol']}"}, timeout=30
    ) as c:
        r = c.post(
            "/jobs", content=json.dumps(spec).encode(), headers={"Content-Type": "application/json"}
        )
        assert r.status_code < 500, (spec, r.status_code, r.text[:300])
        if r.status_code == 201:
            from gpulab.hub.jobs.spec import parse_job_spec

            parse_job_spec(spec)
            c.delete(f"/jobs/{r.json()['id']}")
            return
    assert 400 <= r.status_code < 500
    body = r.json()
    for p in body.get("problems", []):
        assert set(p) >= {"field", "message", "allowed"}
    assert _jobs(gw) == before


def test_quota_counts_every_run_a_sweep_may_run_at_once(gw):
    # alice (vision) may hold 4 GPUs: three runs of 2 at once would hold 6
    spec = command_job("gpu-sweep", "print(1)", gpus=2, sweep={"lr": [1, 2, 3, 4]}, max_parallel=3)
    before = len(gw.kubesim.jobs("gpulab.io/user=alice,!gpulab.io/upload-for"))
    with gw.client("alice") as c:
        r = c.post("/jobs", json=spec)
    assert r.status_code == 429, r.text
    [problem] = [p for p in r.json()["problems"] if p["field"] == "gpus"]
    assert "6 more requested" in problem["message"] and problem["code"] == "quota"
    assert len(gw.kubesim.jobs("gpulab.io/user=alice,!gpulab.io/upload-for")) == before
