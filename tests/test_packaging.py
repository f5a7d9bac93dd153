"""The distribution ships every subpackage and the console scripts the docs promise."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP_LEVEL = {
    "gpulab": "gpulab",
    "hub": "gpulab.hub",
    "spawner": "gpulab.spawner",
    "extensions": "gpulab.extensions",
    "kubesim": "gpulab.kubesim",
}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_python_package_folder_is_listed_in_pyproject():
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    on_disk = set()
    for folder, import_name in TOP_LEVEL.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            on_disk.add(".".join((import_name, *relative)))
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages"


def test_gpulab_console_script_is_declared():
    assert _pyproject()["project"]["scripts"]["gpulab"] == "gpulab.cli:main"


def test_cli_help_lists_every_subcommand(capsys):
    from gpulab.cli import SUBCOMMANDS, build_parser

    build_parser().print_help()
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out
