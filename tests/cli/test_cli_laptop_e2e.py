"""The `gpulab` CLI from a laptop, end to end against the shared platform (hub, proxy, kubesim,
jobs gateway, Ceph).

Every command runs as a subprocess with a clean environment: its own HOME, no JUPYTERHUB_* or
GPULAB_* variables, an 80-column terminal. What it knows comes from `gpulab login`: the address
a researcher pastes from the browser and a token from the hub's token page.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
import urllib.error
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.ceph]

CPU_IMG = "harbor.local/shared/scipy:2024.10"
NOTEBOOK = "cli-train.ipynb"


@dataclass
class Laptop:
    hub_url: str
    user: str
    token: str
    home: Path

    def gpulab(self, *args: str, stdin: str | None = None, timeout: float = 240):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "COLUMNS": "80",
            "LANG": "C.UTF-8",
        }
        return subprocess.run(
            [sys.executable, "-m", "gpulab.cli", *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def run_command(self, name: str, command: str, *flags: str) -> subprocess.CompletedProcess:
        """An inline submit of a command in the CPU image."""
        return self.gpulab(
            "jobs", "submit", "--image", CPU_IMG, "--name", name, "--command", command, *flags
        )


def _notebook() -> dict:
    def code(source: str, tags: list[str] | None = None) -> dict:
        meta = {"tags": tags} if tags else {}
        return {
            "cell_type": "code",
            "metadata": meta,
            "source": source,
            "outputs": [],
            "execution_count": None,
        }

    return {
        "cells": [
            code("epochs = 1\n", ["parameters"]),
            code("print(f'trained for {epochs} epochs')\n"),
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


@pytest.fixture(scope="module")
def laptop(platform, tmp_path_factory) -> Iterator[Laptop]:
    if platform.s3 is None:
        pytest.skip("Ceph (ceph-mon, ceph-osd, radosgw) is not installed")
    name = f"cli-{uuid.uuid4().hex[:6]}"
    platform.api("POST", f"/hub/api/users/{name}")
    with contextlib.suppress(urllib.error.HTTPError):
        platform.api("POST", "/hub/api/groups/vision")
    platform.api("POST", "/hub/api/groups/vision/users", {"users": [name]})
    yield Laptop(platform.hub_url, name, platform.user_token(name), tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def login(laptop):
    pasted = f"{laptop.hub_url}/user/{laptop.user}/lab?reset"  # from the address bar
    return laptop.gpulab("login", "--hub-url", pasted, "--with-token", stdin=laptop.token + "\n")


@pytest.fixture(scope="module")
def server(laptop, login) -> Iterator[subprocess.CompletedProcess]:
    started = laptop.gpulab(
        "server", "start", "--profile", "cpu", "--image", CPU_IMG, "--wait", "-o", "json"
    )
    yield started
    # Explicit flags: the last test logs out.
    laptop.gpulab("server", "stop", "--wait", "--hub-url", laptop.hub_url, "--token", laptop.token)


@pytest.fixture(scope="module")
def notebook_job(laptop, server) -> subprocess.CompletedProcess:
    """An inline notebook submit, followed to its end; the notebook is put in the home through
    the server's contents API, as saving it in JupyterLab would."""
    assert server.returncode == 0, server.stderr
    put = httpx.put(
        f"{laptop.hub_url}/user/{laptop.user}/api/contents/{NOTEBOOK}",
        json={"type": "notebook", "format": "json", "content": _notebook()},
        headers={"Authorization": f"token {laptop.token}"},
        timeout=60,
    )
    assert put.status_code in (200, 201), put.text
    return laptop.gpulab(
        "jobs", "submit", "--notebook", NOTEBOOK, "--image", CPU_IMG, "-p", "epochs=3", "--follow"
    )


def test_login_stores_hub_and_token_in_a_0600_file(laptop, login):
    assert login.returncode == 0, login.stderr
    path = laptop.home / ".config" / "gpulab" / "hosts.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert stored == {"hub_url": laptop.hub_url, "token": laptop.token, "user": laptop.user}


def test_login_refuses_a_wrong_token_and_keeps_the_old_login(laptop, login):
    wrong = laptop.gpulab("login", "--hub-url", laptop.hub_url, "--with-token", stdin="nope\n")
    assert wrong.returncode == 1
    assert "token" in wrong.stderr
    assert laptop.gpulab("quota", "-o", "json").returncode == 0


def test_server_start_waits_until_the_server_is_ready(server):
    assert server.returncode == 0, server.stderr
    view = json.loads(server.stdout)
    assert view["state"] == "ready" and view["profile"] == "cpu"


def test_server_list_shows_the_running_server(laptop, server):
    listed = laptop.gpulab("server", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].split()[:2] == ["(default)", "ready"]


def test_inline_submit_with_follow_streams_the_log_and_exits_0(notebook_job):
    assert notebook_job.returncode == 0, notebook_job.stderr
    assert "trained for 3 epochs" in notebook_job.stdout


def test_submit_prints_the_job_id_and_a_next_step_hint_on_stderr(laptop, login):
    submitted = laptop.run_command("hinted", "true")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert job_id.startswith("hinted-")
    assert f"gpulab jobs logs -f {job_id}" in submitted.stderr


def test_a_failing_job_gives_a_non_zero_exit(laptop, login):
    failed = laptop.run_command("fails", "python -c 'import sys; sys.exit(3)'", "--follow")
    assert failed.returncode == 1
    assert "Failed" in failed.stderr


def test_logs_follow_of_a_failed_job_exits_non_zero(laptop, login):
    failed = laptop.run_command("fails-again", "false", "-o", "json")
    job_id = json.loads(failed.stdout)["id"]
    followed = laptop.gpulab("jobs", "logs", "-f", job_id)
    assert followed.returncode == 1, followed.stderr


def test_a_list_at_80_columns_shows_whole_job_ids(laptop, notebook_job):
    ids = {j["id"] for j in json.loads(laptop.gpulab("jobs", "list", "-o", "json").stdout)}
    assert ids
    table = laptop.gpulab("jobs", "list", "-o", "wide")
    assert table.returncode == 0, table.stderr
    rows = table.stdout.splitlines()[1:]
    assert {r.split()[0] for r in rows} == ids
    assert all(len(line) <= 80 for line in table.stdout.splitlines())


def test_limit_limits_the_list(laptop, notebook_job):
    one = json.loads(laptop.gpulab("jobs", "list", "--limit", "1", "-o", "json").stdout)
    assert len(one) == 1


def test_a_refusal_is_json_on_stderr_under_o_json(laptop, login):
    refused = laptop.run_command("greedy", "true", "--gpus", "16", "-o", "json")
    assert refused.returncode == 1
    assert refused.stdout == ""
    error = json.loads(refused.stderr)
    assert error["status"] == 422 and any(p["field"] == "gpus" for p in error["problems"])


def test_images_lists_what_the_groups_allow(laptop, login):
    images = json.loads(laptop.gpulab("images", "-o", "json").stdout)
    refs = {i["image"] for i in images}
    assert CPU_IMG in refs
    assert not any("/nlp/" in r for r in refs)  # vision may not use nlp's images


def test_quota_shows_the_gpu_quota(laptop, login):
    quota = laptop.gpulab("quota")
    assert quota.returncode == 0, quota.stderr
    assert "of 4 in use by you" in quota.stdout


def test_logout_forgets_the_login(laptop, login, notebook_job):
    # Last in this module: every test above runs logged in.
    out = laptop.gpulab("logout")
    assert out.returncode == 0, out.stderr
    assert not (laptop.home / ".config" / "gpulab" / "hosts.json").exists()
    after = laptop.gpulab("jobs", "list")
    assert after.returncode == 2 and "gpulab login" in after.stderr
