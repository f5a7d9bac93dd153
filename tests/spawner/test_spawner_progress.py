"""Progress events in researchers' words (gpulab.spawner.progress): one pure translation, the
scheduler's own text kept for the "details" disclosure."""

from __future__ import annotations

from gpulab.spawner.progress import (
    Explained,
    QueueWait,
    SpawnContext,
    explain_event,
    explain_queue,
    progress_event,
)

SCHEDULER = (
    "0/2 nodes are available: 2 Insufficient nvidia.com/gpu. preemption: 0/2 nodes are "
    "available: 2 No preemption victims found for incoming pod."
)
ONE_A100 = SpawnContext(gpus=1, gpu_type="a100", gpu_resource="nvidia.com/gpu", ahead=2,
                        wait="10 minutes")  # fmt: skip


def event(reason: str, message: str = "") -> dict[str, str]:
    return {"reason": reason, "message": message, "type": "Warning"}


def test_waiting_for_gpus_says_which_gpu_and_how_many_requests_are_ahead():
    explained = explain_event(event("FailedScheduling", SCHEDULER), ONE_A100)
    assert explained is not None
    assert explained.message.startswith("waiting for a free A100 GPU: 2 requests ahead.")
    assert "gpulab waits up to 10 minutes" in explained.message
    assert "Insufficient" not in explained.message and explained.details == SCHEDULER


def test_several_gpus_and_nobody_ahead_read_naturally():
    ctx = SpawnContext(gpus=2, gpu_type="a100", gpu_resource="nvidia.com/gpu", ahead=0)
    explained = explain_event(event("FailedScheduling", SCHEDULER), ctx)
    assert explained is not None
    assert explained.message.startswith("waiting for 2 free A100 GPUs: no request ahead.")


def test_a_queued_server_says_what_it_waits_for_how_many_are_ahead_and_how_busy_the_group_is():
    reason = "couldn't assign flavors: insufficient unused quota for nvidia.com/gpu"
    ctx = SpawnContext(gpus=2, gpu_type="a100", gpu_resource="nvidia.com/gpu", wait="10 minutes")
    explained = explain_queue(QueueWait("vision", 3, 6, 8, reason), ctx)
    assert explained.message.startswith(
        "queued for 2 free A100 GPUs in vision: 3 ahead, 6 of 8 GPUs of vision in use."
    )
    assert "gpulab waits up to 10 minutes" in explained.message
    assert explained.details == reason


def test_a_queued_server_first_in_line_says_nothing_is_ahead():
    explained = explain_queue(QueueWait("vision", 0, 8, 8), ONE_A100)
    assert "a free A100 GPU in vision: nothing ahead, 8 of 8 GPUs" in explained.message


def test_a_cpu_server_that_does_not_fit_waits_for_cpu_and_memory():
    raw = "0/2 nodes are available: 2 Insufficient cpu."
    explained = explain_event(event("FailedScheduling", raw), SpawnContext())
    assert explained == Explained("waiting for a node with enough free CPU and memory", raw)


def test_pulling_and_starting_are_said_plainly():
    ctx = SpawnContext()
    pulling = explain_event(event("Pulling", 'Pulling image "harbor.local/x:1"'), ctx)
    started = explain_event(event("Started", "Started container notebook"), ctx)
    assert pulling is not None and pulling.message.startswith("pulling image")
    assert started is not None and started.message == "starting Jupyter"


def test_an_unknown_event_shows_its_reason_and_keeps_its_text_for_details():
    explained = explain_event(event("Evicted", "The node was low on memory."), SpawnContext())
    assert explained == Explained("Kubernetes: Evicted", "The node was low on memory.")


def test_an_event_without_text_says_nothing():
    assert explain_event(event("Whatever"), SpawnContext()) is None


def test_the_raw_text_is_only_under_details_and_escaped():
    base = {"progress": 40, "raw_event": {"reason": "x"}, "message": "raw"}
    out = progress_event(base, Explained("waiting <now>", "a < b"))
    assert out == {
        "progress": 40,
        "message": "waiting <now>",
        "html_message": 'waiting &lt;now&gt;<details class="gpulab-event-details">'
        "<summary>details</summary>a &lt; b</details>",
    }
