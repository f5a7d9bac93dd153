"""gpulab's JupyterLab extension is built, shipped and enabled: ``jupyter labextension list`` in
the venv shows it enabled and OK after ``./dev.sh setup``; the Python package carries the
prebuilt files as data files (so ``pip install gpulab[notebook]`` needs no Node); the committed
build matches its sources; the notebook images check it is enabled."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXT = ROOT / "extensions" / "labextension"
PREBUILT = EXT / "prebuilt"
NAME = "@gpulab/labextension"
SHARE = f"share/jupyter/labextensions/{NAME}"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_labextension_list_shows_it_enabled_and_ok() -> None:
    jupyter = Path(sys.executable).parent / "jupyter"
    done = subprocess.run(
        [str(jupyter), "labextension", "list"], capture_output=True, text=True, timeout=120
    )
    listing = ANSI.sub("", done.stdout + done.stderr)
    line = next((ln for ln in listing.splitlines() if NAME in ln), "")
    assert re.search(r"\benabled\b.*\bOK\b.*\(python, gpulab\)", line), listing


def test_prebuilt_matches_its_sources() -> None:
    """The sum ``./dev.sh setup`` compares: a source edited without a rebuild is caught."""
    names = ["package.json", "package-lock.json", "tsconfig.json"]
    files = [EXT / n for n in names]
    files += sorted((EXT / "src").glob("*.ts"))
    files += sorted((EXT / "style").glob("*"))
    files += sorted((EXT / "schema").glob("*.json"))
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()
    assert (EXT / "prebuilt.sha256").read_text().strip() == digest


def test_prebuilt_is_a_complete_federated_extension() -> None:
    meta = json.loads((PREBUILT / "package.json").read_text())
    assert meta["name"] == NAME
    load = meta["jupyterlab"]["_build"]["load"]
    assert (PREBUILT / load).is_file()
    install = json.loads((PREBUILT / "install.json").read_text())
    assert install["packageName"] == "gpulab"
    assert (PREBUILT / "schemas" / NAME / "plugin.json").is_file()


def test_python_package_ships_the_prebuilt_files() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    shipped: set[str] = set()
    for target, patterns in data.items():
        if not target.startswith(SHARE):
            continue
        for pattern in patterns:
            for path in ROOT.glob(pattern):
                rel = path.relative_to(PREBUILT).as_posix()
                assert f"{target}/{path.name}" == f"{SHARE}/{rel}", (target, rel)
                shipped.add(rel)
    built = {p.relative_to(PREBUILT).as_posix() for p in PREBUILT.rglob("*") if p.is_file()}
    assert built == shipped, built ^ shipped


@pytest.mark.parametrize("image", ["pytorch", "tensorflow"])
def test_notebook_images_check_the_extension_is_enabled(image: str) -> None:
    text = (ROOT / "images" / image / "Dockerfile").read_text()
    assert "gpulab[notebook]" in text
    assert f'jupyter labextension list 2>&1 | grep -q "{NAME}.*enabled.*OK"' in text
