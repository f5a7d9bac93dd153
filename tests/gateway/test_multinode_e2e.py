"""A multi-node job end to end on kubesim: two ranks of an Indexed Job find rank 0 through
the job's headless Service and all-reduce a tensor with ``torch.distributed`` (gloo, CPU);
per-rank logs, rank 0's outputs; a failing rank fails the whole job, naming the rank."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from gateway_testlib import NAMESPACE, command_job

pytestmark = [pytest.mark.e2e, pytest.mark.ceph]

ALL_REDUCE = (
    "import os, pathlib, socket, torch, torch.distributed as dist\n"
    "dist.init_process_group('gloo')\n"  # MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE
    "rank = dist.get_rank()\n"
    "t = torch.tensor([float(rank + 1)])\n"
    "dist.all_reduce(t)\n"
    "print(f'rank {rank} of {dist.get_world_size()} on {socket.gethostname()}: sum {t.item()}',"
    " flush=True)\n"
    "if rank == 0:\n"
    "    out = pathlib.Path(os.environ['GPULAB_OUTPUT_DIR'])\n"
    "    (out / 'sum.txt').write_text(str(t.item()))\n"
    "dist.destroy_process_group()\n"
)

RANK_ONE_FAILS = (
    "import os, sys, time\n"
    "if os.environ['RANK'] == '1':\n"
    "    print('rank 1 gives up', flush=True); sys.exit(3)\n"
    "time.sleep(300)\n"
)


@pytest.fixture(scope="module")
def all_reduce(gw) -> dict:
    """A finished two-node all-reduce job of alice's."""
    spec = command_job("allreduce", ALL_REDUCE, nodes=2, gpus_per_node=0)
    with gw.client("alice") as c:
        r = c.post("/jobs", json=spec)
        assert r.status_code == 201, r.text
    return gw.wait_state("alice", r.json()["id"], ("Succeeded", "Failed"), timeout=240)


def test_two_ranks_all_reduce_through_the_headless_service(all_reduce):
    assert all_reduce["state"] == "Succeeded", all_reduce
    assert all_reduce["nodes"] == 2 and [k["rank"] for k in all_reduce["ranks"]] == [0, 1]


def test_each_rank_has_its_own_log(gw, all_reduce):
    job_id = all_reduce["id"]
    with gw.client("alice") as c:
        for rank in (0, 1):
            log = c.get(f"/jobs/{job_id}/logs", params={"rank": rank})
            assert log.status_code == 200, log.text
            assert f"rank {rank} of 2 on {job_id}-{rank}: sum 3.0" in log.text
        assert c.get(f"/jobs/{job_id}/logs", params={"rank": 2}).status_code == 400


def test_the_cli_prints_the_log_of_the_rank_asked_for(gw, all_reduce):
    job_id = all_reduce["id"]
    env = {**os.environ, "GPULAB_HUB_URL": gw.platform.hub_url, "GPULAB_TOKEN": gw.tokens["alice"]}
    for key in ("GPULAB_GATEWAY_URL", "JUPYTERHUB_API_TOKEN"):
        env.pop(key, None)
    done = subprocess.run(
        [sys.executable, "-m", "gpulab.cli", "jobs", "logs", "--rank", "1", job_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert f"rank 1 of 2 on {job_id}-1: sum 3.0" in done.stdout


def test_rank_0_uploads_the_outputs_and_every_rank_its_log(gw, all_reduce):
    job_id = all_reduce["id"]
    with gw.client("alice") as c:
        outputs = c.get(f"/jobs/{job_id}/outputs").json()
    paths = {item["path"] for item in outputs["items"]}
    assert {"outputs/sum.txt", "log.txt", "rank-1/log.txt"} <= paths, paths
    assert not any(p.startswith("rank-1/outputs/") for p in paths)


def test_the_ranks_meet_through_a_headless_service_owned_by_the_job(gw, all_reduce):
    job_id = all_reduce["id"]
    service = gw.kubesim.get(f"/api/v1/namespaces/{NAMESPACE}/services/{job_id}")
    assert service["spec"]["clusterIP"] == "None"
    assert service["metadata"]["ownerReferences"][0]["name"] == job_id


def test_a_failing_rank_fails_the_whole_job_naming_it(gw):
    spec = command_job("rankfail", RANK_ONE_FAILS, nodes=2, gpus_per_node=0)
    with gw.client("alice") as c:
        r = c.post("/jobs", json=spec)
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        done = gw.wait_state("alice", job_id, ("Succeeded", "Failed"), timeout=240)
    assert done["state"] == "Failed", done
    assert done["message"] == "rank 1 of 2 failed with exit code 3; the job was stopped"
    assert done["exit_code"] == 3


def test_a_multi_node_job_over_the_per_job_limit_is_refused_without_a_job(gw):
    selector = "app.kubernetes.io/managed-by=gpulab,gpulab.io/user=alice,!gpulab.io/upload-for"
    before = len(gw.kubesim.jobs(selector))
    spec = command_job("toobig", "pass", nodes=2, gpus_per_node=4)  # 8 GPUs, per_job is 4
    with gw.client("alice") as c:
        r = c.post("/jobs", json=spec)
    assert 400 <= r.status_code < 500, r.text
    fields = {p["field"] for p in r.json()["problems"]}
    assert "gpus_per_node" in fields, r.text
    assert len(gw.kubesim.jobs(selector)) == before


EVERY_RANK_WRITES = (
    "import os, pathlib\n"
    "out = pathlib.Path(os.environ['GPULAB_OUTPUT_DIR'])\n"
    "(out / f\"from-{os.environ['RANK']}.txt\").write_text('x')\n"
)


def test_outputs_from_all_uploads_each_ranks_own(gw):
    spec = command_job("everyrank", EVERY_RANK_WRITES, nodes=2, outputs_from="all")
    with gw.client("alice") as c:
        r = c.post("/jobs", json=spec)
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        done = gw.wait_state("alice", job_id, ("Succeeded", "Failed"), timeout=240)
        assert done["state"] == "Succeeded", done
        paths = {item["path"] for item in c.get(f"/jobs/{job_id}/outputs").json()["items"]}
    assert {"outputs/from-0.txt", "rank-1/outputs/from-1.txt"} <= paths, paths
    assert "outputs/rank-1/from-1.txt" not in paths
