"""Tables fit the terminal's width by shortening every column but the ids."""

from gpulab.extensions.cli.jobs_view import jobs_table
from gpulab.extensions.cli.output import Column, render_table

# The longest id the gateway makes: a 40-character job name, "-" and 6 random characters.
LONG_ID = "train-resnet50-imagenet-mixed-precision1-7h3kq2"


def _job(job_id: str) -> dict:
    return {
        "id": job_id,
        "owner": "alice",
        "state": "Succeeded",
        "gpus": 4,
        "created": "2026-12-03T17:24:22Z",
        "image": "harbor.example.org/vision/pytorch:2.4-cuda12.4",
        "message": "the runner exited 0 after uploading 3 outputs",
    }


def test_a_list_at_80_columns_shows_whole_job_ids():
    text = jobs_table([_job(LONG_ID), _job("short-abc123")], wide=False, show_owner=False, width=80)
    lines = text.splitlines()
    assert lines[1].split()[0] == LONG_ID
    assert lines[2].split()[0] == "short-abc123"
    assert all(len(line) <= 80 for line in lines), text


def test_ids_stay_whole_when_the_terminal_is_narrower_than_they_are():
    text = jobs_table([_job(LONG_ID)], wide=False, show_owner=False, width=20)
    assert text.splitlines()[1].split()[0] == LONG_ID


def test_a_wide_list_shortens_the_other_columns_not_the_ids():
    text = jobs_table([_job(LONG_ID)], wide=True, show_owner=True, width=80)
    row = text.splitlines()[1]
    assert row.startswith(LONG_ID + " ")
    assert "…" in row


def test_a_table_that_fits_is_not_shortened():
    text = render_table([Column("A", whole=True), Column("B")], [["x", "hello world"]], 80)
    assert text.splitlines() == ["A  B", "x  hello world"]


def test_numbers_are_right_aligned():
    text = render_table([Column("N", right=True), Column("NAME")], [["4", "a"], ["12", "b"]], 80)
    assert text.splitlines()[1].startswith(" 4")
