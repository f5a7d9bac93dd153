#!/usr/bin/env bash
# gpulab's developer entry point. Two commands cover a fresh machine:
#   ./dev.sh up     set up, then run the whole platform locally (kubesim backend)
#   ./dev.sh test   set up (incl. Chromium and Ceph from Debian), then run every test
# Also: ./dev.sh setup | lint | bench
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
TORCH_VERSION=2.13.0

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

setup_python() {
  command -v uv >/dev/null 2>&1 || "$PY" -m pip install --quiet uv
  local uv; uv=$(command -v uv || echo "$PY -m uv")
  [ -x .venv/bin/python ] || $uv venv --quiet -p "$PY" .venv
  $uv pip install --quiet -p .venv -e ".[dev]"
  # PyTorch (CPU) for the multi-node training test: pip, pinned, so that it takes the CPU
  # build this machine's pip finds (uv would resolve another wheel).
  if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    .venv/bin/python -m pip --version >/dev/null 2>&1 || $uv pip install --quiet -p .venv pip
    .venv/bin/python -m pip install --quiet "torch==$TORCH_VERSION"
  fi
}

setup_node() {
  # The real configurable-http-proxy that JupyterHub drives.
  [ -x node_modules/.bin/configurable-http-proxy ] || npm install --no-audit --no-fund --silent
}

# gpulab's JupyterLab extension (extensions/labextension): its prebuilt output is committed
# (prebuilt/, shipped as the Python package's data files, so images need no Node), and rebuilt
# here only when its sources differ from those it was built from (prebuilt.sha256). The venv
# (an editable install gets no data files) sees it through a link, as `labextension develop`.
LABEXT=extensions/labextension
labextension_sources_sum() {
  # LC_ALL=C: globs sort bytewise, as tests/labextension/test_labextension_packaging.py does.
  (cd "$LABEXT" && LC_ALL=C; cat package.json package-lock.json tsconfig.json src/*.ts style/* schema/*.json) \
    | sha256sum | cut -d' ' -f1
}
setup_labextension() {
  local sum; sum=$(labextension_sources_sum)
  if [ "$(cat "$LABEXT/prebuilt.sha256" 2>/dev/null)" != "$sum" ] || [ ! -f "$LABEXT/prebuilt/package.json" ]; then
    echo "building the JupyterLab extension ($LABEXT)"
    [ -x "$LABEXT/node_modules/.bin/build-labextension" ] \
      || (cd "$LABEXT" && npm ci --no-audit --no-fund --silent)
    local core
    core=$(.venv/bin/python -c 'import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), "staging"))')
    (cd "$LABEXT" && rm -rf lib tsconfig.tsbuildinfo prebuilt/static \
      && node_modules/.bin/tsc && node_modules/.bin/build-labextension --core-path "$core" . >/dev/null)
    # install.json: `jupyter labextension list` names the Python package that ships it.
    printf '{"packageManager": "python", "packageName": "gpulab", "uninstallInstructions": "pip uninstall gpulab"}\n' \
      > "$LABEXT/prebuilt/install.json"
    echo "$sum" > "$LABEXT/prebuilt.sha256"
  fi
  local dest=.venv/share/jupyter/labextensions/@gpulab/labextension
  mkdir -p "$(dirname "$dest")"
  [ "$(readlink "$dest" 2>/dev/null)" = "$PWD/$LABEXT/prebuilt" ] || ln -sfn "$PWD/$LABEXT/prebuilt" "$dest"
}

# Chromium for browser tests, Ceph (mon, OSD, RGW) for the real S3 gateway.
SYSTEM_PACKAGES=(chromium ceph-mon ceph-osd radosgw ceph-common)
setup_system() {
  local missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v radosgw >/dev/null 2>&1 || missing+=(ceph-mon ceph-osd radosgw ceph-common)
  if [ ${#missing[@]} -gt 0 ]; then
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

case "${1:-}" in
  setup) setup_system; setup_python; setup_node; setup_labextension ;;
  up)
    shift
    setup_python; setup_node; setup_labextension
    exec .venv/bin/gpulab up "$@" ;;
  test)
    shift
    setup_system; setup_python; setup_node; setup_labextension
    # Exit code 5 (no tests collected) is a failure like any other non-zero code.
    # The whole suite (no arguments) runs on $GPULAB_TEST_WORKERS xdist workers (default 2, CI's
    # cores); tests sharing a server-starting fixture stay on one worker (tests/xdist_groups.py).
    # With arguments, pytest gets exactly those (add `-n 2 --dist loadgroup` yourself).
    if [ $# -eq 0 ]; then
      set -- -n "${GPULAB_TEST_WORKERS:-2}" --dist loadgroup
    fi
    exec .venv/bin/python -m pytest "$@" ;;
  lint)
    .venv/bin/ruff check . && .venv/bin/ruff format --check . ;;
  bench)
    # Every benchmark (report.py prints the table, counting_proxy.py is a tool one of them runs),
    # each recording its figures into one report: a table on the terminal, JSON under test-artifacts/.
    # Quick sizes unless GPULAB_BENCH_QUICK=0; each benchmark under a time limit
    # (GPULAB_BENCH_TIMEOUT seconds); one that fails or overruns is a failed row, the others
    # still run, and the command exits non-zero. Names given (e.g. `catalogue`) run only those.
    shift
    setup_python; setup_node
    export GPULAB_BENCH_QUICK=${GPULAB_BENCH_QUICK:-1}
    limit=${GPULAB_BENCH_TIMEOUT:-600}
    mkdir -p test-artifacts
    report=test-artifacts/bench.jsonl
    : > "$report"
    if [ $# -gt 0 ]; then
      benches=(); for n in "$@"; do benches+=("benchmarks/$(basename "$n" .py).py"); done
    else
      benches=(benchmarks/*.py)
    fi
    failed=()
    trap 'exit 130' INT  # Ctrl-C stops the run (after the benchmark running unwinds)
    for b in "${benches[@]}"; do
      case "$b" in benchmarks/report.py|benchmarks/counting_proxy.py) continue ;; esac
      echo "== $b"
      rc=0; started=$SECONDS
      # SIGINT, not SIGTERM, on overrun: Python unwinds and stops the servers it started.
      GPULAB_BENCH_REPORT="$PWD/$report" timeout --foreground -s INT -k 30 "$limit" \
        .venv/bin/python "$b" || rc=$?
      echo "== $b: exit code $rc after $((SECONDS - started)) s"
      [ "$rc" = 0 ] || failed+=(--failed "$(basename "$b" .py)=$rc")
    done
    exec .venv/bin/python benchmarks/report.py "$report" --json test-artifacts/bench.json "${failed[@]}" ;;
  *)
    echo "usage: ./dev.sh up|test|setup|lint|bench" >&2; exit 2 ;;
esac
