"""Hostile saved definitions over HTTP: never a 5xx, never a CronJob for an invalid one
(carol's CronJobs counted in kubesim before and after)."""

from __future__ import annotations

import pytest
from gateway_testlib import NAMESPACE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = [pytest.mark.e2e, pytest.mark.ceph]

CRONJOBS = f"/apis/batch/v1/namespaces/{NAMESPACE}/cronjobs"
TEXT = st.sampled_from(
    ["", " ", "A" * 500, "-x", "UPPER", "../x", "a\x00b", "\u202eevil", "名前", "x" * 64]
) | st.text(max_size=40)
SCHEDULE = st.sampled_from(
    ["61 * * * *", "* * * *", "TZ=UTC 0 2 * * *", "@every 5m", "@reboot", "*/0 * * * *",
     "0 0 30 2 *", "5-1 * * * *", "0 2 * * *", "@daily", "* " * 300]
) | TEXT  # fmt: skip
ZONE = st.sampled_from(["Local", "Mars/Olympus", "../../etc/passwd", "UTC", "Asia/Shanghai"])
SCALAR = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT
SPEC = (
    st.fixed_dictionaries(
        {"name": st.just("ok"), "command": st.just(["true"])},
        optional={"gpus": st.integers(-5, 500) | TEXT, "image": TEXT, "bogus": SCALAR},
    )
    | SCALAR
    | st.lists(SCALAR, max_size=3)
)


@st.composite
def hostile_definition(draw):
    body: dict = {}
    for key, value in (
        ("name", TEXT),
        ("spec", SPEC),
        ("schedule", SCHEDULE | SCALAR),
        ("timezone", ZONE | SCALAR),
        ("concurrency_policy", st.sampled_from(["Allow", "Forbid", "Sometimes"]) | SCALAR),
        ("paused", SCALAR),
        ("extra", SCALAR),
    ):
        if draw(st.booleans()):
            body[key] = draw(value)
    return body


def _carols(gw) -> set[str]:
    items = gw.kubesim.get(CRONJOBS, labelSelector="gpulab.io/user=carol")["items"]
    return {c["metadata"]["name"] for c in items}


def test_raw_hostile_bodies_are_4xx(gw):
    before = _carols(gw)
    with gw.client("carol") as c:
        for body in (
            b"",
            b"{",
            b"[]",
            b"null",
            b"\xff\xfe",
            b"!!python/object/apply:os.system [id]",
        ):
            r = c.post("/definitions", content=body, headers={"Content-Type": "application/yaml"})
            assert 400 <= r.status_code < 500, (body, r.status_code, r.text[:200])
    assert _carols(gw) == before


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=hostile_definition())
def test_hostile_definitions_never_5xx_never_a_cronjob(gw, body):
    before = _carols(gw)
    with gw.client("carol") as c:
        r = c.post("/definitions", json=body)
        assert r.status_code < 500, (body, r.status_code, r.text[:300])
        after = _carols(gw)
        if r.status_code == 201:  # a valid one slipped through the generator: clean up
            assert after - before == {r.json()["id"]}
            assert c.delete(f"/definitions/{r.json()['name']}").status_code == 200
        else:
            assert "error" in r.json()
            assert after == before
