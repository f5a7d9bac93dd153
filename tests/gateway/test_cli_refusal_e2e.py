"""Outside a server the CLI talks to the gateway, which answers a bad notebook path with the
problem shape the server extension answers inside a server (``FieldError``: field, message,
allowed, code), and the CLI prints it the same way: ``notebook: ...`` and exit code 1.
(Inside a server: tests/extension/test_one_route.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from gateway_testlib import GatewayEnv
from gpulab.hub.field_errors import FieldError

from tests.gateway.test_cli_e2e import gpulab

pytestmark = [pytest.mark.e2e, pytest.mark.ceph]

ESCAPING = "../elsewhere/train.ipynb"


def test_the_gateway_refuses_a_path_out_of_the_home_with_the_same_shape(gw: GatewayEnv) -> None:
    with gw.client("alice") as c:
        r = c.post("/jobs", json={"name": "nb", "notebook": ESCAPING})
    assert r.status_code == 422, r.text
    problem = r.json()["problems"][0]
    assert problem["field"] == "notebook"
    assert set(problem) == set(FieldError("notebook", "").as_dict())


def test_the_cli_prints_the_gateway_s_refusal(gw: GatewayEnv, tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text(f"name: nb\nnotebook: {ESCAPING}\n")
    done = gpulab(gw, "submit", str(spec))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "notebook: " in done.stderr and "'..'" in done.stderr
