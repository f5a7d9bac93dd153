"""One benchmark report: every benchmark records its figures here, ``./dev.sh bench`` prints them.

A benchmark calls :func:`record` for each figure it prints. When the environment names a
report file (``GPULAB_BENCH_REPORT``, which ``./dev.sh bench`` sets), each figure is appended
to it as one JSON line; run alone, a benchmark records nothing and only prints as before.

    python benchmarks/report.py FILE [--json OUT]

prints the table of every figure in FILE (its goal, whether it met it, and its ratio to the
baseline measured in the same run) and writes it as one JSON document to OUT. ``--failed
NAME=CODE`` (once per benchmark that exited non-zero) adds a failed row for it, and the command
then exits 1.

``GPULAB_BENCH_QUICK=1`` (``./dev.sh bench`` sets it unless told otherwise) asks every benchmark
for its quick sizes (:func:`sized`): the whole report in minutes, not hours. Run alone, a
benchmark uses its full sizes.

A goal is a bound on the figure itself (``goal=("<=", 20)``: at most 20 in the figure's unit)
or on its ratio to the baseline (``ratio_goal=("<=", 1.5)``: at most 1.5 x the baseline).
Figures without a goal are reported for context (a baseline, a count).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, TypeVar

REPORT_ENV = "GPULAB_BENCH_REPORT"
QUICK_ENV = "GPULAB_BENCH_QUICK"
# The failed row of a benchmark that exited non-zero: its exit code against a goal of 0.
FAILED_FIGURE = "exit code"
# `timeout` exits 124 when the benchmark overran its time limit (dev.sh runs each under one).
TIMED_OUT = 124

Op = Literal["<=", ">=", "=="]
T = TypeVar("T")


@dataclass(frozen=True)
class Figure:
    benchmark: str
    name: str
    value: float
    unit: str
    goal: tuple[Op, float] | None = None
    baseline: float | None = None
    baseline_name: str | None = None
    ratio_goal: tuple[Op, float] | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        """True or False against every goal the figure has; None when it has none."""
        checks: list[bool] = []
        if self.goal is not None:
            checks.append(_holds(self.value, self.goal))
        if self.ratio_goal is not None:
            ratio = self.ratio
            checks.append(ratio is not None and _holds(ratio, self.ratio_goal))
        return all(checks) if checks else None


def _holds(value: float, goal: tuple[Op, float]) -> bool:
    op, target = goal
    if op == "<=":
        return value <= target
    if op == ">=":
        return value >= target
    return value == target


def record(
    benchmark: str,
    name: str,
    value: float,
    unit: str,
    *,
    goal: tuple[Op, float] | None = None,
    baseline: float | None = None,
    baseline_name: str | None = None,
    ratio_goal: tuple[Op, float] | None = None,
) -> Figure:
    """Record one figure (appended to the report file when one is named; returned either way)."""
    figure = Figure(benchmark, name, float(value), unit, goal, baseline, baseline_name, ratio_goal)
    path = os.environ.get(REPORT_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(figure)) + "\n")
    return figure


def quick() -> bool:
    """Whether the benchmarks run at their quick sizes (``GPULAB_BENCH_QUICK`` set, not 0)."""
    return os.environ.get(QUICK_ENV, "").strip() not in ("", "0")


def sized(full: T, quick_size: T) -> T:
    """A benchmark's default size: ``quick_size`` in a quick run, ``full`` otherwise."""
    return quick_size if quick() else full


def failure(benchmark: str, exit_code: int) -> Figure:
    """The row of a benchmark that did not finish: its exit code, which should have been 0."""
    name = f"{FAILED_FIGURE} (timed out)" if exit_code == TIMED_OUT else FAILED_FIGURE
    return Figure(benchmark, name, float(exit_code), "", goal=("==", 0))


def is_failure(figure: Figure) -> bool:
    return figure.name.startswith(FAILED_FIGURE) and figure.met is False


def parse_failed(text: str) -> Figure:
    """``NAME=CODE`` from the command line as a failed row."""
    name, sep, code = text.rpartition("=")
    if not sep or not name or not code.lstrip("-").isdigit():
        raise argparse.ArgumentTypeError(f"--failed: expected NAME=EXIT_CODE, got {text!r}")
    return failure(name, int(code))


def load(path: Path) -> list[Figure]:
    figures = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            raw = json.loads(line)
            for key in ("goal", "ratio_goal"):
                if raw[key] is not None:
                    raw[key] = tuple(raw[key])
            figures.append(Figure(**raw))
    return figures


def _number(value: float) -> str:
    if value == 0 or 0.01 <= abs(value) < 1e6:
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


def _with_unit(value: float, unit: str) -> str:
    return f"{_number(value)} {unit}".rstrip()


def _goal_text(figure: Figure) -> str:
    parts = []
    if figure.goal is not None:
        parts.append(f"{figure.goal[0]} {_with_unit(figure.goal[1], figure.unit)}")
    if figure.ratio_goal is not None:
        parts.append(f"{figure.ratio_goal[0]} {_number(figure.ratio_goal[1])}x baseline")
    return ", ".join(parts)


def table(figures: list[Figure]) -> str:
    """The report as a fixed-width table, one row per figure, grouped by benchmark."""
    head = ("benchmark", "figure", "value", "goal", "met", "baseline", "ratio")
    rows = [head]
    for f in figures:
        met = {True: "yes", False: "NO", None: ""}[f.met]
        baseline = (
            f"{_with_unit(f.baseline, f.unit)} ({f.baseline_name or 'baseline'})"
            if f.baseline is not None
            else ""
        )
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else ""
        rows.append(
            (
                f.benchmark,
                f.name,
                _with_unit(f.value, f.unit),
                _goal_text(f),
                met,
                baseline,
                ratio,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def grouped(figures: list[Figure]) -> list[Figure]:
    """Figures grouped by benchmark, benchmarks in the order they first appear (run order), so
    a failed row added at the end stands with what its benchmark recorded before it failed."""
    order: dict[str, int] = {}
    for f in figures:
        order.setdefault(f.benchmark, len(order))
    return sorted(figures, key=lambda f: order[f.benchmark])


def as_json(figures: list[Figure]) -> dict[str, object]:
    return {
        "figures": [{**asdict(f), "ratio": f.ratio, "met": f.met} for f in figures],
        "goals": sum(1 for f in figures if f.met is not None),
        "goals_missed": sum(1 for f in figures if f.met is False),
        "failed": [f.benchmark for f in figures if is_failure(f)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the benchmark report table.")
    parser.add_argument("report", type=Path, help="the JSON-lines file the benchmarks wrote")
    parser.add_argument("--json", type=Path, help="also write the report as one JSON document")
    parser.add_argument(
        "--failed",
        type=parse_failed,
        action="append",
        default=[],
        metavar="NAME=CODE",
        help="a benchmark that exited non-zero (a failed row; the command then exits 1)",
    )
    args = parser.parse_args(argv)
    figures = grouped(load(args.report) + args.failed)
    print(table(figures))
    summary = as_json(figures)
    failed = [f.benchmark for f in figures if is_failure(f)]
    print(f"\n{summary['goals']} goals, {summary['goals_missed']} missed", end="")
    print(f"; failed: {', '.join(failed)}" if failed else "")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        print(f"written to {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
