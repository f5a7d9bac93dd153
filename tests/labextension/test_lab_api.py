"""``gpulab/api/lab/...`` in a real ``jupyter server`` (no hub): the parameters cell of a
notebook, this server's status for the dialog, the status bar and the notifications (with the
idle-GPU-kernel reaper's warning), and the answers when the file or the services are missing."""

from __future__ import annotations

from tests.extension.jupyter_testlib import JupyterServer, idle_kernel_holding_gpu, until
from tests.extension.test_server_standalone import server as standalone_server

# The extension's own standalone server (fake GPU probe, kernel reaper after 1 s, warning 2 s
# before the shutdown), started afresh for this module.
server = standalone_server

PARAMETERS = {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "outputs": [],
              "execution_count": None, "source": "epochs = 3\nlr = 1e-3\nname = 'resnet'\n"}  # fmt: skip


def test_parameters_of_a_notebook(server: JupyterServer) -> None:
    notebook = {"cells": [PARAMETERS], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    with server.client() as c:
        put = c.put("/api/contents/params.ipynb", json={"type": "notebook", "content": notebook})
        assert put.status_code in (200, 201), put.text
        r = c.get("/gpulab/api/lab/parameters", params={"path": "params.ipynb"})
    assert r.status_code == 200, r.text
    found = {p["name"]: p["value"] for p in r.json()["parameters"]}
    assert found == {"epochs": 3, "lr": 0.001, "name": "resnet"}


def test_parameters_of_a_missing_notebook_name_the_field(server: JupyterServer) -> None:
    with server.client() as c:
        r = c.get("/gpulab/api/lab/parameters", params={"path": "nope.ipynb"})
    assert r.status_code == 404
    assert r.json()["field"] == "notebook" and "nope.ipynb" in r.json()["error"]


def test_a_script_has_no_parameters(server: JupyterServer) -> None:
    with server.client() as c:
        r = c.get("/gpulab/api/lab/parameters", params={"path": "train.py"})
    assert r.status_code == 200 and r.json()["parameters"] == []


def test_status_gives_this_servers_gpus_and_says_why_no_quota(server: JupyterServer) -> None:
    with server.client() as c:
        status = until(
            lambda: (
                (s := c.get("/gpulab/api/lab/status").json())["server"]["utilisation_pct"] and s
            ),
            "a GPU sample in the status",
        )
    assert status["server"] | {"sampled_at": None} == {
        "name": "",
        "image": "harbor.local/shared/scipy:2024.10",
        "gpus": 1,
        "gpu_type": "",
        "utilisation_pct": [0.0],
        "sampled_at": None,
    }
    assert status["me"] is None and status["me_error"] == "no jobs gateway configured"
    assert status["cull"]["culler"] is False


def test_an_idle_kernel_holding_gpu_memory_is_in_the_status(server: JupyterServer) -> None:
    with server.client() as c:
        kid = idle_kernel_holding_gpu(server, c)

        def events() -> list[dict]:
            kernels = c.get("/gpulab/api/lab/status").json()["kernels"]
            return [e for e in kernels["events"] if e["kernel_id"] == kid]

        warn = until(lambda: [e for e in events() if e["action"] == "warn"], "a warning")
        assert "holds 2.0 GiB of GPU memory" in warn[0]["reason"]
        # then the reaper's action, in the same list (the notification says it too)
        until(lambda: [e for e in events() if e["action"] == "shutdown"], "the shutdown")
