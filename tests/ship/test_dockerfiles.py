"""images/*/Dockerfile, checked statically (no docker build here): pinned bases, the labels
the catalogue reads, gpulab installed with the right extra and its extension enabled, the
console scripts present, a non-root final user.

"The extras resolve" is checked offline: the extra exists in pyproject.toml and in the
installed distribution's metadata, every requirement in it parses (PEP 508), and the dev
venv (which installs gpulab[dev] = hub + notebook through a resolver) satisfies each one. A
real resolution for the image's Python runs at `docker build` time.
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
NOTEBOOK_IMAGES = ("pytorch", "tensorflow")
FRAMEWORK_TEMPLATE = "framework"  # FROM <any framework image>, adds gpulab
ALL_IMAGES = ("hub", *NOTEBOOK_IMAGES, FRAMEWORK_TEMPLATE)
OCI_LABELS = (
    "org.opencontainers.image.title",
    "org.opencontainers.image.description",
    "org.opencontainers.image.source",
    "org.opencontainers.image.version",
)
GPULAB_LABELS = ("io.gpulab.framework", "io.gpulab.cuda", "io.gpulab.gpu")
EXTENSION_MODULE = "gpulab.extensions.server"
EXTENSION_ENABLE = f"jupyter server extension enable --sys-prefix {EXTENSION_MODULE}"


# ----------------------------------------------------------------------------- parser


@dataclass
class Instruction:
    keyword: str  # upper case
    args: str  # after continuation joining and ARG/ENV substitution
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)


_VAR = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<op>[-+])(?P<word>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def substitute(text: str, env: dict[str, str]) -> str:
    """Docker's variable substitution: $X, ${X}, ${X:-default}, ${X:+alt}. Unknown variables
    are left as they are (they belong to the shell of a RUN, not to the Dockerfile)."""

    def repl(m: re.Match[str]) -> str:
        name = m.group("braced") or m.group("bare")
        op, word = m.group("op"), m.group("word")
        if op == "-":
            return env.get(name) or word
        if op == "+":
            return word if env.get(name) else ""
        return env.get(name, m.group(0))

    return _VAR.sub(repl, text)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join continuation lines (trailing backslash), drop comments and blank lines. Comment
    lines inside a continued instruction are skipped, as Docker does."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buf):
            continue
        if not buf:
            start = lineno
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].rstrip())
            continue
        buf.append(stripped)
        out.append((start, " ".join(part for part in buf if part)))
        buf = []
    if buf:
        out.append((start, " ".join(buf)))
    return out


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages with their instructions; ARG defaults before the first FROM apply to FROM
    lines, ARG/ENV inside a stage apply to what follows in that stage."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    env: dict[str, str] = {}
    for lineno, line in _logical_lines(text):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "FROM":
            words = substitute(rest, global_args).split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
            env = {}
            continue
        if keyword == "ARG":
            key, eq, value = rest.partition("=")
            value = shlex.split(value)[0] if eq and value else ""
            if not stages:
                global_args[key] = value
            else:
                # an ARG redeclared in a stage without a value takes the global default
                env[key] = value if eq else global_args.get(key, "")
            continue
        if not stages:
            raise ValueError(f"line {lineno}: {keyword} before FROM")
        args = substitute(rest, env)
        if keyword == "ENV":
            for key, value in _pairs(args).items():
                env[key] = substitute(value, env)
        stages[-1].instructions.append(Instruction(keyword, args, lineno))
    if not stages:
        raise ValueError("no FROM")
    return stages


def _pairs(args: str) -> dict[str, str]:
    """key=value pairs of LABEL / ENV (values may be quoted)."""
    pairs: dict[str, str] = {}
    for token in shlex.split(args):
        key, eq, value = token.partition("=")
        if not eq:
            raise ValueError(f"not a key=value pair: {token!r}")
        pairs[key] = value
    return pairs


def labels(stage: Stage) -> dict[str, str]:
    out: dict[str, str] = {}
    for ins in stage.instructions:
        if ins.keyword == "LABEL":
            out.update(_pairs(ins.args))
    return out


def runs(stage: Stage) -> str:
    return "\n".join(i.args for i in stage.instructions if i.keyword == "RUN")


def final_user(stage: Stage) -> str | None:
    users = [i.args.strip() for i in stage.instructions if i.keyword == "USER"]
    return users[-1] if users else None


def is_pinned(image: str, stage_names: set[str]) -> bool:
    if image in stage_names or image == "scratch":
        return True
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return False  # no tag = latest
    tag = last.rsplit(":", 1)[1]
    return bool(tag) and tag != "latest" and "$" not in tag


def is_root(user: str | None) -> bool:
    if user is None:
        return True
    name = user.split(":", 1)[0]
    return name in ("0", "root", "")


# ----------------------------------------------------------------------------- parser tests


def test_parser_joins_lines_and_substitutes_args() -> None:
    text = """# syntax=docker/dockerfile:1
ARG BASE=ubuntu
ARG TAG=22.04
FROM ${BASE}:${TAG} AS build
ARG V=1.2
ENV HOME_DIR=/home/x \\
    P=${V}
# a comment inside
LABEL a="x y" \\
  # skipped
      b=${P}
RUN echo $HOME_DIR \\
    && echo ${UNKNOWN:-fallback} ${P:+set}
FROM scratch
COPY --from=build /x /x
USER 1000:100
"""
    stages = parse_dockerfile(text)
    assert [s.base for s in stages] == ["ubuntu:22.04", "scratch"]
    assert stages[0].name == "build"
    assert labels(stages[0]) == {"a": "x y", "b": "1.2"}
    assert runs(stages[0]) == "echo /home/x && echo fallback set"
    assert final_user(stages[1]) == "1000:100" and not is_root(final_user(stages[1]))


@pytest.mark.parametrize(
    "image, pinned",
    [
        ("nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04", True),
        ("quay.io/jupyterhub/k8s-hub:4.2.0", True),
        ("quay.io/jupyterhub/k8s-hub@sha256:" + "a" * 64, True),
        ("registry:5000/x/y:1.0", True),
        ("nvidia/cuda", False),
        ("nvidia/cuda:latest", False),
        ("registry:5000/x/y", False),
    ],
)
def test_pinning_rule(image: str, pinned: bool) -> None:
    assert is_pinned(image, set()) is pinned


def test_broken_dockerfile_is_caught() -> None:
    stages = parse_dockerfile("FROM python\nRUN pip install gpulab\nUSER root\n")
    assert not is_pinned(stages[-1].base, set())
    assert is_root(final_user(stages[-1]))
    assert not set(GPULAB_LABELS) <= set(labels(stages[-1]))
    assert EXTENSION_ENABLE not in runs(stages[-1])
    with pytest.raises(ValueError):
        parse_dockerfile("RUN true\n")


# ----------------------------------------------------------------------------- the images


def _stages(image: str) -> list[Stage]:
    return parse_dockerfile((IMAGES / image / "Dockerfile").read_text())


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_image_is_checked() -> None:
    assert {p.parent.name for p in IMAGES.glob("*/Dockerfile")} == set(ALL_IMAGES)


@pytest.mark.parametrize("image", ALL_IMAGES)
def test_bases_are_pinned(image: str) -> None:
    stages = _stages(image)
    names = {s.name for s in stages if s.name}
    for stage in stages:
        assert is_pinned(stage.base, names), f"{image}: FROM {stage.base} is not pinned"
    for stage in stages:
        for ins in stage.instructions:
            if ins.keyword == "COPY" and "--from=" in ins.args:
                source = ins.args.split("--from=", 1)[1].split()[0]
                assert is_pinned(source, names), f"{image}: COPY --from={source} is not pinned"


def test_hub_base_is_the_charts_hub_image() -> None:
    base = _stages("hub")[-1].base
    assert base.startswith("quay.io/jupyterhub/k8s-hub:4.")


@pytest.mark.parametrize("image", ALL_IMAGES)
def test_final_user_is_not_root(image: str) -> None:
    user = final_user(_stages(image)[-1])
    assert not is_root(user), f"{image}: final USER is {user!r}"
    assert user == "1000", "jovyan, as singleuser.uid and the hub's runAsUser expect"


@pytest.mark.parametrize("image", ALL_IMAGES)
def test_oci_labels(image: str) -> None:
    found = labels(_stages(image)[-1])
    missing = [key for key in OCI_LABELS if not found.get(key)]
    assert not missing, f"{image}: missing labels {missing}"
    assert found["org.opencontainers.image.version"] == _pyproject()["project"]["version"]
    assert "$" not in "".join(found.values()), f"{image}: unsubstituted variable in {found}"


@pytest.mark.parametrize("image", NOTEBOOK_IMAGES)
def test_catalogue_labels(image: str) -> None:
    """The labels say what the catalogue needs, and the catalogue reads them as meant."""
    from gpulab.hub.catalogue.model import hints_from_metadata

    stage = _stages(image)[-1]
    found = labels(stage)
    assert set(GPULAB_LABELS) <= set(found), f"{image}: missing {set(GPULAB_LABELS) - set(found)}"
    assert found["io.gpulab.framework"] == image
    assert found["io.gpulab.gpu"] == "true"
    # the CUDA label is the base image's CUDA (major.minor)
    base_cuda = re.search(r"nvidia/cuda:(\d+\.\d+)", stage.base)
    assert base_cuda, f"{image}: base {stage.base} is not an nvidia/cuda image"
    assert found["io.gpulab.cuda"] == base_cuda.group(1)
    hints = hints_from_metadata(found, repository=f"shared/{image}")
    assert (hints.framework, hints.cuda, hints.gpu) == (image, base_cuda.group(1), True)
    assert hints.display_name == found["org.opencontainers.image.title"]


@pytest.mark.parametrize(
    "image, extra",
    [
        ("hub", "hub"),
        ("pytorch", "notebook"),
        ("tensorflow", "notebook"),
        ("framework", "notebook"),
    ],
)
def test_installs_gpulab_with_its_extra(image: str, extra: str) -> None:
    run = runs(_stages(image)[-1])
    assert re.search(rf"pip install [^\n]*gpulab\[{extra}\]", run), f"{image}: no gpulab[{extra}]"


@pytest.mark.parametrize("image", (*NOTEBOOK_IMAGES, FRAMEWORK_TEMPLATE))
def test_readiness_labels_make_the_image_ready_for_notebooks_and_jobs(image: str) -> None:
    """The images that carry gpulab's server and runner say so, as the catalogue reads it."""
    from gpulab.hub.catalogue.model import hints_from_metadata

    found = labels(_stages(image)[-1])
    version = _pyproject()["project"]["version"]
    assert found.get("org.gpulab.notebook") == found.get("org.gpulab.runner") == version
    hints = hints_from_metadata(found, repository=f"shared/{image}")
    assert (hints.notebook, hints.runner) == (version, version)


@pytest.mark.parametrize("image", (*NOTEBOOK_IMAGES, FRAMEWORK_TEMPLATE))
def test_extension_enabled_and_scripts_present(image: str) -> None:
    run = runs(_stages(image)[-1])
    assert EXTENSION_ENABLE in run
    # the build fails when a console script is missing
    scripts = re.search(r"for script in ([^;]+); do command -v", run)
    assert scripts, f"{image}: no console-script check"
    names = set(scripts.group(1).split())
    assert {"gpulab", "gpulab-job-runner", "jupyterhub-singleuser"} <= names
    declared = set(_pyproject()["project"]["scripts"])
    assert {"gpulab", "gpulab-job-runner"} <= declared, "console scripts of the distribution"


@pytest.mark.parametrize("extra", ["hub", "notebook"])
def test_extras_exist_and_resolve(extra: str) -> None:
    extras = _pyproject()["project"]["optional-dependencies"]
    assert extra in extras, f"pyproject.toml has no [{extra}] extra"
    meta = importlib.metadata.metadata("gpulab")
    assert extra in (meta.get_all("Provides-Extra") or []), "reinstall: pip install -e .[dev]"
    unsatisfied = []
    for spec in extras[extra]:
        req = Requirement(spec)
        try:
            installed = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            unsatisfied.append(f"{req} (not installed)")
            continue
        if req.specifier and not req.specifier.contains(installed, prereleases=True):
            unsatisfied.append(f"{req} (have {installed})")
    assert not unsatisfied, f"gpulab[{extra}] does not resolve in the dev venv: {unsatisfied}"


def test_the_enabled_extension_module_is_a_jupyter_server_extension():
    import importlib

    module = importlib.import_module(EXTENSION_MODULE)
    points = module._jupyter_server_extension_points()
    assert points and points[0]["module"] == EXTENSION_MODULE
