"""A submit whose answer is lost is retried with the same Idempotency-Key and makes one job.

The real ``gpulab jobs`` command line talks to the real gateway through a small proxy that
forwards the first submit to the gateway (which creates the job) and then answers the client
503, as a proxy does when the gateway dies before it answers. The client's retry must get the
same job back, and the cluster must hold exactly one Job.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from gateway_testlib import SubmitProxy, submit_proxy

pytestmark = [pytest.mark.e2e, pytest.mark.ceph]

GATEWAY_PATH = "/services/jobs-gateway"


@pytest.fixture
def lossy_proxy(gw) -> Iterator[SubmitProxy]:
    with submit_proxy(gw.platform.hub_url + GATEWAY_PATH, lose_first_answer=True) as proxy:
        yield proxy


def _cli_submit(gw, proxy: SubmitProxy, spec_file, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GPULAB_GATEWAY_URL": proxy.url, "GPULAB_TOKEN": gw.tokens["alice"]}
    env.pop("GPULAB_HUB_URL", None)
    env.pop("JUPYTERHUB_API_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "gpulab.cli", "jobs", "--json", "submit", str(spec_file), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _jobs_named(gw, name: str) -> list[str]:
    return [
        j["metadata"]["name"]
        for j in gw.kubesim.jobs()
        if j["metadata"]["name"].startswith(name + "-")
    ]


@pytest.mark.parametrize("given_key", [None, "retry-e2e-"], ids=["fresh-key", "cli-key"])
def test_a_lost_submit_answer_is_retried_into_the_same_job(gw, lossy_proxy, tmp_path, given_key):
    name = f"lost-answer-{uuid.uuid4().hex[:8]}"
    spec = tmp_path / "job.yaml"
    spec.write_text(
        f"name: {name}\nimage: harbor.local/shared/scipy:2024.10\n"
        "command: [python, -c, \"print('once')\"]\n"
    )
    extra = ("--idempotency-key", given_key + name) if given_key else ()
    done = _cli_submit(gw, lossy_proxy, spec, *extra)
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)

    first, retry = lossy_proxy.submits[:2]
    assert first["gateway_status"] == 201, "the gateway made the job on the first attempt"
    assert first["key"] and first["key"] == retry["key"], lossy_proxy.submits
    if given_key:
        assert first["key"] == given_key + name
    assert len(lossy_proxy.submits) == 2
    assert _jobs_named(gw, name) == [job["id"]], "a retried submit made a second Job"

    with gw.client("alice") as c:
        c.delete(f"/jobs/{job['id']}")  # its pod is not needed: one Job is what was checked
