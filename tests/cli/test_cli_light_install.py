"""The CLI runs from a laptop install: `pip install "gpulab[cli]"` has no hub packages."""

import subprocess
import sys
import tomllib
from pathlib import Path

HUB_ONLY = (
    "jupyterhub",
    "kubernetes_asyncio",
    "aiohttp",
    "tornado",
    "sqlalchemy",
    "boto3",
    "jupyter_server",
    "kubernetes",
    "ipywidgets",
)


def test_building_the_cli_imports_no_hub_or_notebook_package():
    probe = (
        "import sys, gpulab.cli; gpulab.cli.build_parser(); "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HUB_ONLY!r})))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_cli_extra_is_declared():
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert "cli" in pyproject["project"]["optional-dependencies"]
