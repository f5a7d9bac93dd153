"""The dashboard's pure pieces: Y-axis ticks, the per-node GPU view and its fragmentation
note, the CSV export, and the page's per-node section and row actions."""

from __future__ import annotations

import re

from gpulab.hub.culler.service.node_gpus import node_gpus
from gpulab.hub.dashboard import render_dashboard
from gpulab.hub.dashboard.charts import axis_ticks, stacked_bars
from gpulab.hub.dashboard.export import running_csv, usage_csv


def node(name: str, gpus: int, product: str = "A100", ready: bool = True) -> dict:
    return {
        "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": product}},
        "status": {
            "allocatable": {"nvidia.com/gpu": str(gpus), "cpu": "32"},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def pod(node_name: str, gpus: int, phase: str = "Running") -> dict:
    return {
        "spec": {
            "nodeName": node_name,
            "containers": [{"resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}],
        },
        "status": {"phase": phase},
    }


def test_y_axis_labels_are_each_printed_once():
    for peak in (0.04, 0.1, 0.3, 1.0, 2.4, 7, 13.3, 999):
        ticks, decimals = axis_ticks(peak)
        labels = [f"{v:.{decimals}f}" for v in ticks]
        assert len(labels) == len(set(labels)), (peak, labels)
        assert ticks[0] == 0 and ticks[-1] >= peak


def test_chart_of_a_small_peak_has_distinct_axis_labels():
    svg = stacked_bars({"nlp": {"2026-12-01": 0.1}, "cv": {"2026-12-02": 0.05}})
    labels = re.findall(r'text-anchor="end" class="axis">([^<]+)<', svg)
    assert labels == ["0.00", "0.05", "0.10"]


def test_free_and_used_per_node_from_live_pods():
    nodes, types = node_gpus(
        [node("n1", 4), node("n2", 8, "H100")],
        [pod("n1", 1), pod("n1", 2), pod("n2", 8), pod("n1", 1, phase="Succeeded")],
        {"A100": "a100", "H100": "h100"},
    )
    assert [(n.name, n.gpu_type, n.used, n.free) for n in nodes] == [
        ("n1", "a100", 3, 1),
        ("n2", "h100", 8, 0),
    ]
    assert [(t.gpu_type, t.capacity, t.used, t.free) for t in types] == [
        ("a100", 4, 3, 1),
        ("h100", 8, 8, 0),
    ]


def test_scattered_free_gpus_are_called_out():
    _, types = node_gpus(
        [node(f"n{i}", 4) for i in range(3)], [pod(f"n{i}", 3) for i in range(3)], {"A100": "a100"}
    )
    assert types[0].notes == ["3 a100 GPUs free, but no node has 2 free (at most 1 on one node)"]


def test_free_gpus_beyond_a_nodes_size_are_not_fragmentation():
    _, types = node_gpus([node("n1", 4), node("n2", 4)], [pod("n1", 1)], {})
    assert (types[0].free, types[0].notes) == (7, [])


def test_free_gpus_on_one_node_are_not_fragmentation():
    _, types = node_gpus([node("n1", 4), node("n2", 4)], [pod("n1", 4)], {})
    assert types[0].notes == []


def test_a_node_that_is_not_ready_offers_no_free_gpus():
    nodes, _ = node_gpus([node("n1", 4, ready=False)], [], {})
    assert nodes[0].free == 0


def test_usage_csv_has_a_header_and_defuses_formulas():
    text = usage_csv(
        [
            {"user": "alice", "group": "vision", "kind": "server", "gpu_hours": 1.5,
             "cpu_hours": 3.0, "count": 2},
            {"user": "=HYPERLINK()", "group": "g", "kind": "job", "gpu_hours": 0.0,
             "cpu_hours": 0.0, "count": 1},
        ]
    )  # fmt: skip
    lines = text.splitlines()
    assert lines[0] == "user,group,kind,gpu_hours,cpu_hours,count"
    assert lines[1] == "alice,vision,server,1.500,3.000,2"
    assert lines[2].startswith("'=HYPERLINK()")


def test_running_csv_lists_servers_and_jobs():
    text = running_csv(
        [{"kind": "job", "user": "bob", "group": "nlp", "name": "j-1", "server": "",
          "job_id": "j-1", "gpus": 1, "gpu_type": "a100", "started": "2026-12-03T10:00:00"}]
    )  # fmt: skip
    assert text.splitlines()[1] == "job,bob,nlp,j-1,,j-1,1,a100,2026-12-03T10:00:00"


def page(**extra) -> str:
    data = {
        "generated": "2026-12-03T10:00:00+00:00",
        "capacity": [],
        "in_use_by_group": [],
        "quota": [],
        "running": [
            {"kind": "server", "user": "alice", "group": "g", "name": "jupyter-alice",
             "server": "", "job_id": None, "gpus": 1, "gpu_type": "a100", "age_seconds": 60},
        ],
        "idle_holders": [],
        "idle_jobs": [],
        "gpu_hours_by_group_day": {},
        "usage": [],
        "nodes": [],
        "gpu_types": [],
        "nodes_watched": True,
        **extra,
    }  # fmt: skip
    return render_dashboard(data, prefix="/services/culler/", xsrf="token")


def test_page_shows_the_per_node_view_and_fragmentation():
    nodes, types = node_gpus(
        [node(f"n{i}", 4) for i in range(3)], [pod(f"n{i}", 3) for i in range(3)], {"A100": "a100"}
    )
    html = page(nodes=[n.to_json() for n in nodes], gpu_types=[t.to_json() for t in types])
    assert 'class="warn fragmentation">3 a100 GPUs free, but no node has 2 free' in html
    assert html.count('<tr data-node="') == 3


def test_page_says_when_nodes_are_not_watched():
    assert "no per-node view" in page(nodes_watched=False)


def test_rows_carry_a_key_a_result_slot_and_csv_links():
    html = page()
    assert 'data-key="server:alice/"' in html and 'class="result" role="status"' in html
    assert "/services/culler/api/v1/export/usage.csv" in html
    assert "/services/culler/api/v1/export/running.csv" in html
    assert 'id="message"' not in html  # no result below the fold any more
