"""A multi-node job end to end on kubesim: two ranks of an Indexed Job find rank 0 through
the job's headless Service and all-reduce a tensor with ``torch.distributed`` (gloo, CPU);
per-rank logs, rank 0's outputs; a failing rank fails the whole job, naming the rank."""

from __future__ import annotations

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


def test_two_ranks_all_reduce_through_the_headless_service(gw):
    spec = command_job("allreduce", ALL_REDUCE, nodes=2, gpus_per_node=0)
    with gw.client("alice") as c:
        r = c.post("/jobs", json=spec)
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        done = gw.wait_state("alice", job_id, ("Succeeded", "Failed"), timeout=300)
        assert done["state"] == "Succeeded", done
        assert done["nodes"] == 2 and [k["rank"] for k in done["ranks"]] == [0, 1]

        for rank in (0, 1):
            log = c.get(f"/jobs/{job_id}/logs", params={"rank": rank})
            assert log.status_code == 200, log.text
            assert f"rank {rank} of 2 on {job_id}-{rank}: sum 3.0" in log.text

        outputs = c.get(f"/jobs/{job_id}/outputs").json()
        paths = {item["path"] for item in outputs["items"]}
        assert {"outputs/sum.txt", "log.txt", "rank-1/log.txt"} <= paths, paths
        assert c.get(f"/jobs/{job_id}/logs", params={"rank": 2}).status_code == 400

    service = gw.kubesim.get(f"/api/v1/namespaces/{NAMESPACE}/services/{job_id}")
    assert service["spec"]["clusterIP"] == "None"
    assert service["metadata"]["ownerReferences"][0]["name"] == job_id


def test_a_failing_rank_fails_the_whole_job_naming_it(gw):
    spec = command_job("rankfail", RANK_ONE_FAILS, nodes=2, gpus_per_node=0)
    with gw.client("alice") as c:
        r = c.post("/jobs", json=spec)
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        done = gw.wait_state("alice", job_id, ("Succeeded", "Failed"), timeout=300)
    assert done["state"] == "Failed", done
    assert done["message"] == "rank 1 of 2 failed with exit code 3; the job was stopped"
    assert done["exit_code"] == 3
