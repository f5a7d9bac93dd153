"""Job slots hold under simultaneous submits: a CPU job in a group without CPU or memory quota
is checked in the gateway alone (no quota ledger write), and however many such submits of one
user arrive at once, no more than the group's ``max_concurrent`` jobs are admitted."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from gateway_testlib import command_job

pytestmark = [pytest.mark.e2e, pytest.mark.ceph]

LIMIT = 5  # the nlp group's jobs.max_concurrent in tests/e2e/policy.yaml
WAITING = "import time; time.sleep(600)"


def test_simultaneous_cpu_submits_never_exceed_the_job_limit(gw):
    name = "slots-race"
    gw.platform.api("POST", f"/hub/api/users/{name}", {})
    gw.platform.api("POST", "/hub/api/groups/nlp/users", {"users": [name]})
    token = gw.platform.user_token(name)
    headers = {"Authorization": f"token {token}"}
    with httpx.Client(base_url=gw.base, headers=headers, timeout=60) as client:

        def submit(i: int) -> httpx.Response:
            return client.post("/jobs", json=command_job(f"slot{i}", WAITING))

        with ThreadPoolExecutor(LIMIT + 3) as pool:
            answers = list(pool.map(submit, range(LIMIT + 3)))
        try:
            statuses = sorted(r.status_code for r in answers)
            assert statuses == [201] * LIMIT + [429] * 3, [r.text[:200] for r in answers]
        finally:
            for r in answers:
                if r.status_code == 201:
                    client.delete(f"/jobs/{r.json()['id']}")
