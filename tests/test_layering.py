"""Which side of gpulab may import which: read from the source with ``ast`` (every import,
function-local ones included), so a violation fails here before it fails in a pod that lacks
the other side's dependencies.

- ``gpulab.hub`` (the hub pod) never imports the notebook side (``gpulab.extensions``), the
  spawner (JupyterHub imports it by name from ``hub/config.py``) or the embedded Kubernetes.
- ``gpulab.extensions`` (user pods and laptops) imports from ``gpulab.hub`` only the pure
  modules listed below.
- ``gpulab.wire`` (what both sides exchange) imports nothing else of gpulab.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# pyproject's package-dir: where each top-level part of the gpulab namespace lives.
PACKAGE_DIRS = {
    "gpulab.hub": ROOT / "hub",
    "gpulab.extensions": ROOT / "extensions",
    "gpulab.spawner": ROOT / "spawner",
    "gpulab.kubesim": ROOT / "kubesim",
    "gpulab.wire": ROOT / "gpulab" / "wire",
}
# The job runner validates the spec again inside the job (paths must stay in the home) with
# the gateway's own parser, and checks the job id's shape: both pure, no I/O.
EXTENSIONS_MAY_IMPORT = {"gpulab.hub.jobs.spec", "gpulab.hub.jobs.ids"}


def _modules(package: str) -> Iterator[tuple[str, Path]]:
    root = PACKAGE_DIRS[package]
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join([package, *parts]), path


def _imports(module: str, path: Path) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import statement in the file."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target
            # "from gpulab.hub import jobs" imports gpulab.hub.jobs
            for alias in node.names:
                yield node.lineno, f"{target}.{alias.name}"


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _violations(package: str, allowed: Callable[[str], bool]) -> list[str]:
    out = []
    for module, path in _modules(package):
        for line, target in _imports(module, path):
            if _under(target, "gpulab") and not allowed(target):
                out.append(f"{module} (line {line}) imports {target}")
    return sorted(set(out))


def test_hub_never_imports_the_notebook_side_the_spawner_or_kubesim() -> None:
    forbidden = ("gpulab.extensions", "gpulab.spawner", "gpulab.kubesim")
    assert _violations("gpulab.hub", lambda t: not any(_under(t, f) for f in forbidden)) == []


def test_notebook_side_imports_only_pure_hub_modules() -> None:
    def allowed(target: str) -> bool:
        if not _under(target, "gpulab.hub"):
            return not _under(target, "gpulab.spawner") and not _under(target, "gpulab.kubesim")
        return any(_under(target, m) for m in EXTENSIONS_MAY_IMPORT)

    assert _violations("gpulab.extensions", allowed) == []


def test_wire_stands_alone() -> None:
    assert _violations("gpulab.wire", lambda t: _under(t, "gpulab.wire")) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from gpulab.extensions.activity import ActivityReport", True),
        ("def f():\n    from gpulab.spawner import hub_state\n", True),
        ("from ...spawner import x", True),  # hub/a/b.py: gpulab.spawner
        ("from gpulab import kubesim", True),
        ("from gpulab.wire.activity import ActivityReport", False),
        ("from ..policy import PolicyFile", False),
    ],
)
def test_the_walker_sees_every_kind_of_import(
    tmp_path: Path, source: str, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b.py").write_text(source)
    monkeypatch.setitem(PACKAGE_DIRS, "gpulab.hub", tmp_path)
    forbidden = ("gpulab.extensions", "gpulab.spawner", "gpulab.kubesim")
    found = _violations("gpulab.hub", lambda t: not any(_under(t, f) for f in forbidden))
    assert bool(found) is expected, found
