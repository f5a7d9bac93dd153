"""Inside a server, every client takes the jobs page's route: the server extension's
``gpulab/api/``. A mistyped notebook path is refused there, before anything reaches the jobs
gateway, with the same problem (field ``notebook``, "no such file") whichever client sent it:
the page's API, the ``gpulab jobs`` command line, ``jobs.submit`` and the panel.

A real ``jupyter server`` with the extension and no gateway configured: a refusal that came
from the gateway would be a 503 "not configured" instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from gpulab.extensions.client import ClientConfig, GatewayError, server_api_url
from gpulab.hub.field_errors import FieldError

from tests.extension.jupyter_testlib import JupyterServer, bare_server

MISTYPED = "work/trian.ipynb"  # the server has work/train.ipynb


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("one-route") / "home"
    (root / "work").mkdir(parents=True)
    (root / "work" / "train.ipynb").write_text(json.dumps({"cells": [], "nbformat": 4}))
    with bare_server(root) as s:
        yield s


@pytest.fixture
def inside(server: JupyterServer, monkeypatch: pytest.MonkeyPatch) -> JupyterServer:
    """This process as a kernel of ``server`` sees it: the server's URL and token."""
    monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", server.url + "/")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", server.token)
    monkeypatch.setenv("HOME", str(server.root))
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:9/hub/api")  # set in every server
    for name in ("GPULAB_GATEWAY_URL", "GPULAB_HUB_URL", "GPULAB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return server


def assert_no_such_notebook(problems: list[dict]) -> None:
    assert [p["field"] for p in problems] == ["notebook"], problems
    assert f"{MISTYPED!r}: no such file" in problems[0]["message"]
    # the gateway's shape, so a client reads one shape whoever refused the spec
    assert set(problems[0]) == set(FieldError("notebook", "").as_dict())
    assert problems[0]["code"] == "invalid"


def test_a_server_listening_everywhere_is_reached_on_loopback() -> None:
    env = {"JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8888/user/alice/"}
    assert server_api_url(env) == "http://127.0.0.1:8888/user/alice/gpulab/api"
    assert server_api_url({}) == ""


def test_inside_a_server_clients_use_the_server_extension(inside: JupyterServer) -> None:
    config = ClientConfig.discover()
    assert config.jobs_api == inside.url + "/gpulab/api"
    assert config.token == inside.token


def test_an_explicit_hub_url_goes_to_the_gateway(inside: JupyterServer) -> None:
    config = ClientConfig.discover(hub_url="http://127.0.0.1:9", token="t0k")
    assert config.jobs_api == "http://127.0.0.1:9/services/jobs-gateway/api/v1"


def test_the_page_api_refuses_a_mistyped_notebook(server: JupyterServer) -> None:
    with server.client() as c:
        r = c.post("/gpulab/api/jobs", json={"name": "nb", "notebook": MISTYPED})
    assert r.status_code == 422, r.text
    assert_no_such_notebook(r.json()["problems"])


def test_jobs_submit_refuses_a_mistyped_notebook(inside: JupyterServer) -> None:
    from gpulab import jobs

    with pytest.raises(GatewayError) as refused:
        jobs.submit({"name": "nb", "notebook": MISTYPED})
    assert refused.value.status == 422
    assert_no_such_notebook(refused.value.problems)


def test_the_cli_refuses_a_mistyped_notebook(inside: JupyterServer, tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text(f"name: nb\nnotebook: {MISTYPED}\n")
    done = subprocess.run(
        [sys.executable, "-m", "gpulab.cli", "jobs", "submit", str(spec)],
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"notebook: {MISTYPED!r}: no such file" in done.stderr


def test_the_panel_refuses_a_mistyped_notebook(inside: JupyterServer) -> None:
    from gpulab.extensions.panel import JobsPanel

    panel = JobsPanel(env={"HOME": str(inside.root)})
    panel.name.value = "nb"
    panel.path.value = MISTYPED
    panel.submit()
    assert "no such file" in panel.submit_result.value
    assert "notebook" in panel.submit_result.value


def test_the_cli_route_inside_a_server_is_the_server_extension(inside: JupyterServer) -> None:
    from gpulab.extensions.cli.globals import GlobalOptions
    from gpulab.extensions.cli.transport import resolve_route

    assert resolve_route(GlobalOptions()).jobs_api_url == inside.url + "/gpulab/api"
    with_token = resolve_route(GlobalOptions(token="a-user-token", hub_url="http://hub.example"))
    assert with_token.jobs_api_url == ""  # told where to go: the gateway, as on a laptop
