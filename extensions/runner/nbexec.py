"""Execute one notebook with papermill (run by the job runner as its child process, so that
the cell output goes through the runner's log tee): ``python -m
gpulab.extensions.runner.nbexec CONFIG.json`` where the JSON has ``input``, ``output``,
``parameters``, ``cwd`` and ``kernel``. Exit code 0 on success, 1 when a cell failed, 2 when
the notebook could not be read."""

from __future__ import annotations

import json
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m gpulab.extensions.runner.nbexec CONFIG.json", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as fh:
        cfg = json.load(fh)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    import papermill
    from papermill.exceptions import PapermillExecutionError

    try:
        papermill.execute_notebook(
            cfg["input"],
            cfg["output"],
            parameters=cfg.get("parameters") or {},
            kernel_name=cfg.get("kernel") or "python3",
            cwd=cfg.get("cwd"),
            progress_bar=False,
            log_output=False,
            stdout_file=sys.stdout,
            stderr_file=sys.stderr,
        )
    except PapermillExecutionError as exc:
        sys.stdout.flush()
        print(
            f"gpulab: the notebook failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}",
            file=sys.stderr,
        )
        return 1
    except FileNotFoundError as exc:
        print(f"gpulab: cannot read the notebook: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
