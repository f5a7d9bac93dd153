"""The distribution ships every subpackage, the console scripts the docs promise and the data
`gpulab up` reads, so that it runs from an installed wheel as well as from a checkout."""

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

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


# ------------------------------------------------------------------- the wheel's package data
# What `gpulab up` reads at run time and must find in an installed wheel, not in a checkout.
PACKAGE_DATA = ("gpulab/hub/demo/policy.yaml", "gpulab/hub/demo/users.yaml", "gpulab/microceph.sh")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the checkout's files (tracked, or new and not ignored), so
    that the checkout gets no build/ folder."""
    uv = shutil.which("uv")
    assert uv, "uv not found (./dev.sh setup installs it): it builds the wheel"
    source = tmp_path_factory.mktemp("source")
    tracked = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, tracked.split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (path,) = out.glob("gpulab-*.whl")
    return path


def test_wheel_ships_what_gpulab_up_reads(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "gpulab/hub/demo/__init__.py" in names
    for name in PACKAGE_DATA:
        assert name in names, f"{name} is not in the wheel: add it to package-data"


def test_wheel_ships_the_manifests_gpulab_up_applies_to_kubesim(wheel):
    """gpulab.kube_identities reads them from {sys.prefix}/share/gpulab/manifests."""
    from gpulab.kube_identities import MANIFEST_FILES

    names = set(zipfile.ZipFile(wheel).namelist())
    for name in MANIFEST_FILES:
        assert any(n.endswith(f".data/data/share/gpulab/manifests/{name}") for n in names), name


def test_platform_finds_the_demo_in_an_installed_wheel(wheel, tmp_path):
    """Unpacked wheel first on sys.path (the editable install's finder comes after it): the
    demo files and microceph.sh must resolve inside it, through importlib.resources."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        "import json\n"
        "from importlib.resources import files\n"
        "import gpulab.platform as p\n"
        "from gpulab.hub import demo\n"
        "print(json.dumps({\n"
        "    'module': p.__file__,\n"
        "    'policy': str(p.PlatformConfig(state_dir='.').policy_path),\n"
        "    'users': str(demo.users_file()),\n"
        "    'resource': str(files('gpulab.hub.demo') / 'policy.yaml'),\n"
        "    'microceph': str(p.find_microceph()),\n"
        "}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GPULAB_MICROCEPH_SH"}
    env["PYTHONPATH"] = str(site)
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout)
    assert found["module"] == str(site / "gpulab" / "platform.py")
    assert found["policy"] == found["resource"] == str(site / "gpulab/hub/demo/policy.yaml")
    assert found["users"] == str(site / "gpulab/hub/demo/users.yaml")
    assert found["microceph"] == str(site / "gpulab/microceph.sh")
