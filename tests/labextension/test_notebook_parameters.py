"""The ``parameters`` cell as the "Run as job" dialog pre-fills it."""

from __future__ import annotations

from gpulab.extensions.server.notebook_parameters import parameters_of


def _nb(source: str, tags: list[str] | None = None) -> dict:
    cell = {"cell_type": "code", "metadata": {"tags": tags or []}, "source": source}
    return {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# x"}, cell]}


def test_literals_become_json_values_in_order() -> None:
    found = parameters_of(
        _nb('epochs = 2\nlr: float = 0.1\nname = "r"\nsizes = (1, 2)\n', ["parameters"])
    )
    assert [(p.name, p.value, p.literal) for p in found] == [
        ("epochs", 2, True),
        ("lr", 0.1, True),
        ("name", "r", True),
        ("sizes", [1, 2], True),
    ]


def test_an_expression_is_given_as_its_source() -> None:
    (p,) = parameters_of(_nb("steps = 10 * 3\n", ["parameters"]))
    assert (p.name, p.value, p.source, p.literal) == ("steps", None, "10 * 3", False)


def test_no_tagged_cell_or_bad_syntax_gives_none() -> None:
    assert parameters_of(_nb("epochs = 2\n")) == []
    assert parameters_of(_nb("epochs = = 2\n", ["parameters"])) == []


def test_source_as_a_list_of_lines() -> None:
    nb = _nb("", ["parameters"])
    nb["cells"][1]["source"] = ["a = 1\n", "b = [1, 2]\n"]
    assert [(p.name, p.value) for p in parameters_of(nb)] == [("a", 1), ("b", [1, 2])]
