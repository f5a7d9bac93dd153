"""The benchmark report (benchmarks/report.py): figures recorded by the benchmarks, the table and
JSON that ``./dev.sh bench`` prints and writes, and that every benchmark records its figures."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
# Not benchmarks: the report itself and a tool culler_cycle.py runs.
NOT_BENCHMARKS = {"report.py", "counting_proxy.py"}


def _load_report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("benchmark_report", BENCHMARKS / "report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


report = _load_report()


@pytest.fixture
def report_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "bench.jsonl"
    monkeypatch.setenv(report.REPORT_ENV, str(path))
    return path


def _rows(text: str) -> dict[str, list[str]]:
    """The table's data rows by figure name, split on the column gaps (two spaces or more)."""
    lines = text.splitlines()[2:]
    return {cells[1]: cells for cells in (re.split(r"\s{2,}", line) for line in lines)}


def _sample() -> list:
    return [
        report.Figure("submit", "p99", 12.0, "ms", goal=("<=", 20)),
        report.Figure("submit", "p50", 30.0, "ms", goal=("<=", 20)),
        report.Figure(
            "submit",
            "gateway p99",
            150.0,
            "ms",
            baseline=100.0,
            baseline_name="bare creates",
            ratio_goal=("<=", 1.5),
        ),
        report.Figure(
            "submit",
            "gateway throughput",
            70.0,
            "jobs/s",
            baseline=100.0,
            baseline_name="bare creates",
            ratio_goal=(">=", 0.8),
        ),
        report.Figure("catalogue", "Harbor requests per call", 0.0, "", goal=("==", 0)),
        report.Figure("catalogue", "cold load", 2.5, "s"),
    ]


def test_record_appends_one_json_line_per_figure_to_the_named_report(report_file: Path) -> None:
    report.record("catalogue", "cold load", 2.5, "s", goal=("<=", 5))
    report.record("catalogue", "warm p99", 50, "µs", baseline=25, baseline_name="median")
    assert report.load(report_file) == [
        report.Figure("catalogue", "cold load", 2.5, "s", goal=("<=", 5.0)),
        report.Figure("catalogue", "warm p99", 50.0, "µs", baseline=25.0, baseline_name="median"),
    ]


def test_record_without_a_named_report_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(report.REPORT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    figure = report.record("catalogue", "cold load", 2.5, "s")
    assert figure.value == 2.5
    assert list(tmp_path.iterdir()) == []


def test_table_marks_each_goal_met_or_missed_and_leaves_figures_without_a_goal_blank() -> None:
    rows = _rows(report.table(_sample()))
    assert rows["p99"][2:5] == ["12 ms", "<= 20 ms", "yes"]
    assert rows["p50"][2:5] == ["30 ms", "<= 20 ms", "NO"]
    assert rows["Harbor requests per call"][2:5] == ["0", "== 0", "yes"]
    assert rows["cold load"] == ["catalogue", "cold load", "2.5 s"]


def test_table_shows_the_same_run_baseline_and_the_ratio_against_its_goal() -> None:
    rows = _rows(report.table(_sample()))
    assert rows["gateway p99"][2:] == [
        "150 ms",
        "<= 1.5x baseline",
        "yes",
        "100 ms (bare creates)",
        "1.50x",
    ]
    assert rows["gateway throughput"][3:] == [
        ">= 0.8x baseline",
        "NO",
        "100 jobs/s (bare creates)",
        "0.70x",
    ]


def test_json_gives_each_figure_its_ratio_and_verdict_and_counts_the_goals() -> None:
    summary = report.as_json(_sample())
    by_name = {f["name"]: f for f in summary["figures"]}
    assert by_name["gateway throughput"]["ratio"] == pytest.approx(0.7)
    assert by_name["gateway throughput"]["met"] is False
    assert by_name["p99"]["ratio"] is None and by_name["p99"]["met"] is True
    assert by_name["cold load"]["met"] is None
    assert (summary["goals"], summary["goals_missed"], summary["failed"]) == (5, 2, [])
    json.dumps(summary)  # one JSON document


def test_a_figure_with_both_goals_meets_them_only_when_both_hold() -> None:
    both = report.Figure(
        "culler_cycle", "requests", 12, "", goal=("<=", 10), baseline=12, ratio_goal=("<=", 1)
    )
    assert both.ratio == 1.0
    assert both.met is False


def test_a_ratio_goal_without_a_usable_baseline_is_missed() -> None:
    figure = report.Figure("x", "y", 5, "s", baseline=0, ratio_goal=("<=", 1.5))
    assert figure.ratio is None
    assert figure.met is False


def test_main_prints_a_failed_row_for_a_failed_benchmark_with_its_own_figures_and_exits_1(
    report_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report.record("catalogue", "cold load", 2.5, "s", goal=("<=", 5))
    report.record("kubesim_api", "get rate", 2000, "gets/s")
    report.record("catalogue", "warm median", 20, "µs")
    out = tmp_path / "bench.json"
    code = report.main([str(report_file), "--json", str(out), "--failed", "catalogue=1"])
    assert code == 1
    table = capsys.readouterr().out
    names = [row[:2] for row in _rows(table.split("\n\n")[0]).values()]
    assert names == [
        ["catalogue", "cold load"],
        ["catalogue", "warm median"],
        ["catalogue", "exit code"],
        ["kubesim_api", "get rate"],
    ]
    assert _rows(table.split("\n\n")[0])["exit code"][2:5] == ["1", "== 0", "NO"]
    assert json.loads(out.read_text())["failed"] == ["catalogue"]


def test_a_benchmark_that_overran_its_time_limit_is_reported_as_timed_out() -> None:
    figure = report.parse_failed("culler_cycle=124")
    assert (figure.benchmark, figure.name, figure.met) == (
        "culler_cycle",
        "exit code (timed out)",
        False,
    )


def test_main_exits_0_when_no_benchmark_failed_even_with_goals_missed(
    report_file: Path, tmp_path: Path
) -> None:
    report.record("spawn", "page size", 652, "KiB", goal=("<=", 100))
    assert report.main([str(report_file), "--json", str(tmp_path / "bench.json")]) == 0


def test_main_refuses_a_failed_benchmark_without_its_exit_code(report_file: Path) -> None:
    report_file.write_text("")
    with pytest.raises(SystemExit) as exc:
        report.main([str(report_file), "--failed", "catalogue"])
    assert exc.value.code == 2


def test_quick_sizes_apply_only_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = []
    for value in (None, "0", "1"):
        if value is None:
            monkeypatch.delenv(report.QUICK_ENV, raising=False)
        else:
            monkeypatch.setenv(report.QUICK_ENV, value)
        sizes.append(report.sized(2000, 200))
    assert sizes == [2000, 2000, 200]


def _records_figures(tree: ast.Module) -> bool:
    """Imports ``record`` from the report module and calls it."""
    imported = any(
        isinstance(node, ast.ImportFrom)
        and node.module == "report"
        and any(alias.name == "record" for alias in node.names)
        for node in ast.walk(tree)
    )
    called = any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "record"
        for node in ast.walk(tree)
    )
    return imported and called


@pytest.mark.parametrize(
    "path",
    sorted(p for p in BENCHMARKS.glob("*.py") if p.name not in NOT_BENCHMARKS),
    ids=lambda p: p.name,
)
def test_every_benchmark_records_its_figures_in_the_report(path: Path) -> None:
    records = _records_figures(ast.parse(path.read_text(encoding="utf-8")))
    assert records, f"{path.name} never calls record(...) from benchmarks/report.py"
