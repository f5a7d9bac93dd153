"""What counts as a kernel's work for the culler: code run and its output, not widget traffic
(the jobs panel's refresh) nor the kernel's busy/idle around it."""

from __future__ import annotations

import pytest
from gpulab.extensions.kernel_activity import counts_as_activity


@pytest.mark.parametrize(
    ("msg_type", "parent"),
    [
        ("execute_input", "execute_request"),
        ("status", "execute_request"),
        ("stream", "execute_request"),
        ("stream", None),  # the user's own background thread printing
        ("display_data", "comm_msg"),  # a widget callback's output
        ("error", "execute_request"),
    ],
)
def test_code_run_and_its_output_count(msg_type: str, parent: str | None) -> None:
    assert counts_as_activity(msg_type, parent)


@pytest.mark.parametrize(
    ("msg_type", "parent"),
    [
        ("comm_msg", None),  # a widget updated from a background thread (the panel's refresh)
        ("comm_msg", "execute_request"),
        ("comm_open", "execute_request"),
        ("comm_close", None),
        ("status", "comm_msg"),  # the kernel handling a front end's widget message
        ("status", "kernel_info_request"),
        ("status", "comm_info_request"),
    ],
)
def test_widget_traffic_and_housekeeping_do_not_count(msg_type: str, parent: str | None) -> None:
    assert not counts_as_activity(msg_type, parent)
