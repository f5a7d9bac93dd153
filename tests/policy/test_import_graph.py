"""The policy package is a chain of steps: no module may import, even inside a function or
under ``TYPE_CHECKING``, a module that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import gpulab.hub.policy

PACKAGE = "gpulab.hub.policy"


def _modules(package: str, root: Path) -> dict[str, Path]:
    """Module name -> source file, for every module of the package (subpackages too)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join([package, *parts])] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``name`` imports anywhere in its body, relative imports
    resolved. Importing ``a.b.c`` runs ``a`` and ``a.b`` first, except the packages ``name``
    itself lives in (already importing when ``name`` runs): those count only when named
    (``from . import CONSTANT``)."""
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    ancestors = {".".join(here[:i]) for i in range(1, len(here) + 1)}
    named: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            # `from . import sub` imports the submodule; `from . import NAME` the package.
            subs = {f"{module}.{alias.name}" for alias in node.names}
            named.update(subs & known)
            if subs - known:
                named.add(module)
    implied = {
        ".".join(target.split(".")[:i]) for target in named for i in range(1, target.count(".") + 1)
    }
    return ((named | (implied - ancestors)) & known) - {name}


def import_graph(package: str, root: Path) -> dict[str, set[str]]:
    modules = _modules(package, root)
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (``[a, b, ..., a]``), or None."""
    done: set[str] = set()
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in stack:
            return stack[stack.index(node) :] + [node]
        if node in done:
            return None
        stack.append(node)
        for dep in sorted(graph[node]):
            cycle = visit(dep)
            if cycle:
                return cycle
        stack.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def test_policy_package_has_no_import_cycle():
    root = Path(gpulab.hub.policy.__file__).parent
    graph = import_graph(PACKAGE, root)
    assert {f"{PACKAGE}.model", f"{PACKAGE}.document", f"{PACKAGE}.watch"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_walk_sees_function_local_relative_and_type_checking_imports(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import thing\n")
    (pkg / "b.py").write_text("def thing():\n    from . import c\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import x.a\n"
    )
    (pkg / "d.py").write_text("from .a import thing\n")
    (pkg / "e.py").write_text("def f():\n    from . import VERSION\n")
    graph = import_graph("x", pkg)
    assert graph == {
        "x": set(),
        "x.a": {"x.b"},
        "x.b": {"x.c"},
        "x.c": {"x.a"},
        "x.d": {"x.a"},
        "x.e": {"x"},
    }
    assert find_cycle(graph) == ["x.a", "x.b", "x.c", "x.a"]
    (pkg / "c.py").write_text("")
    assert find_cycle(import_graph("x", pkg)) is None
