"""The panel's and the CLI's jobs list say where a queued job stands and what preemption cost."""

from __future__ import annotations

from gpulab.extensions.jobs_cli import _queue
from gpulab.extensions.panel import jobs_table_html

QUEUED = {
    "name": "train",
    "id": "train-abcdef",
    "state": "Queued",
    "gpus": 2,
    "message": "2 × a100 in vision: 3 jobs ahead, 6 of 8 GPUs busy",
    "queue": {"name": "alice", "position": 4, "ahead": 3},
    "preemptions": 0,
    "gpu_hours_lost": 0.0,
}


def test_panel_shows_a_queued_jobs_reason_under_its_state():
    table = jobs_table_html([QUEUED])
    assert "2 × a100 in vision: 3 jobs ahead, 6 of 8 GPUs busy" in table


def test_panel_shows_no_queue_line_for_a_running_job():
    table = jobs_table_html([{**QUEUED, "state": "Running", "queue": None, "message": ""}])
    assert "gpulab-queue" not in table


def test_cli_queue_column_gives_the_place_and_the_preemptions():
    assert _queue(QUEUED) == "#4 in alice"
    preempted = {**QUEUED, "preemptions": 2, "gpu_hours_lost": 0.5}
    assert _queue(preempted) == "#4 in alice; preempted, requeued (2×), 0.5 GPU-h lost"
    assert _queue({"state": "Running"}) == ""
