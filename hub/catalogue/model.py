"""The catalogue's data model and the pure functions that turn registry metadata into it.

No I/O here: :func:`hints_from_metadata` reads framework / CUDA / GPU hints from an image's
OCI config labels, its manifest annotations and its environment; :func:`images_from_artifact`
turns one Harbor artifact (the JSON of ``GET .../artifacts``) into one :class:`Image` per tag;
:func:`image_from_static` turns one entry of the policy's static list into an :class:`Image`.

The labels gpulab reads (first match wins; see docs/catalogue.md):

=================  ==========================================================================
hint               labels / annotations, in order of precedence
=================  ==========================================================================
display name       ``io.gpulab.display-name``, ``org.opencontainers.image.title``
description        ``io.gpulab.description``, ``org.opencontainers.image.description``
framework          ``io.gpulab.framework``; else the first of ``com.nvidia.pytorch.version``,
                   ``com.nvidia.tensorflow.version``, ``com.nvidia.jax.version`` that is set;
                   else a framework word in the repository name (``pytorch``, ``tensorflow``…)
CUDA version       ``io.gpulab.cuda``, ``com.nvidia.cuda.version``, ``cuda.version``,
                   then the ``CUDA_VERSION`` environment variable (set by nvidia/cuda bases)
GPU                ``io.gpulab.gpu`` (true/false); else true when a CUDA version is known
hidden             ``io.gpulab.hidden`` = true, or a Harbor label named ``gpulab-hidden``
recommended        ``io.gpulab.recommended`` = true, or a Harbor label named
                   ``gpulab-recommended`` (listed first on the spawn page)
notebook server    ``org.gpulab.notebook`` = the gpulab version whose Jupyter server and lab
                   extension the image carries (set by ``images/`` Dockerfiles)
job runner         ``org.gpulab.runner`` = the gpulab version of its ``gpulab-job-runner``
=================  ==========================================================================

Readiness (:func:`readiness`): an image without ``org.gpulab.notebook`` is not offered for
servers ("not ready: missing the Jupyter server"), one without ``org.gpulab.runner`` runs jobs
only in plain-command mode. Static entries are ready unless the admin says otherwise.

Config labels win over manifest annotations (annotations fill what the labels leave unset).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CatalogueError",
    "Hints",
    "Image",
    "LABEL_CUDA",
    "LABEL_DESCRIPTION",
    "LABEL_DISPLAY_NAME",
    "LABEL_FRAMEWORK",
    "LABEL_GPU",
    "LABEL_HIDDEN",
    "LABEL_RECOMMENDED",
    "HARBOR_LABEL_HIDDEN",
    "HARBOR_LABEL_RECOMMENDED",
    "hints_from_metadata",
    "image_from_static",
    "images_from_artifact",
    "is_index",
    "normalise_cuda",
    "LABEL_NOTEBOOK",
    "LABEL_RUNNER",
    "MISSING_NOTEBOOK",
    "MISSING_RUNNER",
    "Readiness",
    "parse_bool",
    "readiness",
    "pick_platform_child",
    "split_reference",
]

# --- the gpulab label set ---------------------------------------------------------------------
LABEL_DISPLAY_NAME = "io.gpulab.display-name"
LABEL_DESCRIPTION = "io.gpulab.description"
LABEL_FRAMEWORK = "io.gpulab.framework"
LABEL_CUDA = "io.gpulab.cuda"
LABEL_GPU = "io.gpulab.gpu"
LABEL_HIDDEN = "io.gpulab.hidden"
LABEL_RECOMMENDED = "io.gpulab.recommended"
# Readiness: the value is the gpulab version the image was built against (any non-empty text).
LABEL_NOTEBOOK = "org.gpulab.notebook"
LABEL_RUNNER = "org.gpulab.runner"
HARBOR_LABEL_HIDDEN = "gpulab-hidden"  # a Harbor (UI) label, not an OCI label
HARBOR_LABEL_RECOMMENDED = "gpulab-recommended"  # likewise

OCI_TITLE = "org.opencontainers.image.title"
OCI_DESCRIPTION = "org.opencontainers.image.description"

_DISPLAY_KEYS = (LABEL_DISPLAY_NAME, OCI_TITLE)
_DESCRIPTION_KEYS = (LABEL_DESCRIPTION, OCI_DESCRIPTION)
_CUDA_KEYS = (LABEL_CUDA, "com.nvidia.cuda.version", "cuda.version")
# NGC containers label the framework version; the label's presence names the framework.
_FRAMEWORK_VERSION_KEYS = (
    ("com.nvidia.pytorch.version", "pytorch"),
    ("com.nvidia.tensorflow.version", "tensorflow"),
    ("com.nvidia.jax.version", "jax"),
)
# Framework words recognised in repository names (``vision/pytorch-notebook`` -> pytorch).
_FRAMEWORK_WORDS = {
    "pytorch": "pytorch",
    "torch": "pytorch",
    "tensorflow": "tensorflow",
    "tf": "tensorflow",
    "jax": "jax",
    "mxnet": "mxnet",
    "paddle": "paddlepaddle",
    "paddlepaddle": "paddlepaddle",
}
_INDEX_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n", ""}
_CUDA_RE = re.compile(r"v?(\d+)\.(\d+)(?:\.\d+)*")
_MAX_TEXT = 500  # registry strings end up in the spawn form; keep them bounded


class CatalogueError(Exception):
    """The registry could not be read. ``code`` is Harbor's error code (``UNAUTHORIZED``,
    ``NOT_FOUND``, …) or one of gpulab's (``TIMEOUT``, ``UNREACHABLE``, ``BAD_RESPONSE``);
    ``status`` the HTTP status when there was one. Messages never contain credentials."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


@dataclass(frozen=True)
class Image:
    """One image (one tag) offered to researchers."""

    reference: str  # registry/project/repo:tag, what the pod pulls
    project: str
    repository: str  # inside the project; nested names keep their slashes
    tag: str
    digest: str | None
    display_name: str
    framework: str | None
    cuda: str | None
    gpu: bool
    description: str
    # extensions to the contract (defaults keep older call sites working)
    registry: str = ""
    push_time: str | None = None
    platform: str | None = None  # "linux/amd64" when known
    recommended: bool = False  # listed first on the spawn page
    # readiness: the gpulab version of its Jupyter server / job runner; None = lacks it
    notebook: str | None = "static"
    runner: str | None = "static"


MISSING_NOTEBOOK = "missing the Jupyter server"
MISSING_RUNNER = "missing the job runner"


@dataclass(frozen=True)
class Readiness:
    """What an image can run (pure view of :class:`Image`)."""

    notebooks: bool
    jobs: bool

    @property
    def missing(self) -> list[str]:
        """What it lacks, in words researchers read (``[]``: ready for both)."""
        return [
            m
            for ok, m in ((self.notebooks, MISSING_NOTEBOOK), (self.jobs, MISSING_RUNNER))
            if not ok
        ]

    @property
    def notebook_reason(self) -> str | None:
        """``"not ready: missing the Jupyter server"`` for an image servers cannot start."""
        return None if self.notebooks else f"not ready: {MISSING_NOTEBOOK}"


def readiness(img: Any) -> Readiness:
    """An image's readiness from its ``notebook``/``runner`` fields (objects without them,
    such as older stand-ins, count as ready)."""
    return Readiness(
        notebooks=getattr(img, "notebook", "static") is not None,
        jobs=getattr(img, "runner", "static") is not None,
    )


@dataclass(frozen=True)
class Hints:
    """What labels, annotations and environment say about an image."""

    display_name: str | None = None
    description: str | None = None
    framework: str | None = None
    cuda: str | None = None
    gpu: bool | None = None
    hidden: bool = False
    recommended: bool = False
    notebook: str | None = None
    runner: str | None = None


# ----------------------------------------------------------------------------- small helpers


def parse_bool(value: Any) -> bool | None:
    """``"true"``/``"1"``/``"yes"`` -> True, ``"false"``/``"0"``/``"no"`` -> False, else None."""
    if isinstance(value, bool):
        return value
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def normalise_cuda(value: Any) -> str | None:
    """``"12.4.1"``, ``"v12.4"``, ``12.4`` -> ``"12.4"`` (major.minor); other text is kept
    as written (stripped, bounded); empty -> None."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    if not text:
        return None
    m = _CUDA_RE.fullmatch(text)
    if m:
        return f"{m.group(1)}.{m.group(2)}"
    return text[:32]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text[:_MAX_TEXT] or None


def _first(keys: Iterable[str], *maps: Mapping[str, Any]) -> Any:
    for key in keys:
        for m in maps:
            value = m.get(key)
            if value is not None and str(value).strip():
                return value
    return None


def _env_map(env: Sequence[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env or ():
        if isinstance(item, str) and "=" in item:
            k, v = item.split("=", 1)
            out[k] = v
    return out


def _framework_from_name(repository: str) -> str | None:
    last = repository.rsplit("/", 1)[-1].lower()
    for word in re.split(r"[^a-z0-9]+", last):
        if word in _FRAMEWORK_WORDS:
            return _FRAMEWORK_WORDS[word]
    return None


def hints_from_metadata(
    labels: Mapping[str, Any] | None = None,
    annotations: Mapping[str, Any] | None = None,
    env: Sequence[str] | None = None,
    *,
    repository: str = "",
    harbor_labels: Iterable[str] = (),
) -> Hints:
    """Read gpulab's hints (module docstring) from OCI config ``labels``, manifest
    ``annotations``, the config's ``env`` (``KEY=value`` strings), the repository name and the
    names of Harbor labels attached to the artifact."""
    lab: Mapping[str, Any] = labels or {}
    ann: Mapping[str, Any] = annotations or {}
    env_vars = _env_map(env)

    framework_raw = _first((LABEL_FRAMEWORK,), lab, ann)
    framework = _text(framework_raw).lower() if _text(framework_raw) else None  # type: ignore[union-attr]
    if framework is None:
        for key, name in _FRAMEWORK_VERSION_KEYS:
            if _first((key,), lab, ann) is not None:
                framework = name
                break
    if framework is None and repository:
        framework = _framework_from_name(repository)

    cuda = normalise_cuda(_first(_CUDA_KEYS, lab, ann))
    if cuda is None:
        cuda = normalise_cuda(env_vars.get("CUDA_VERSION"))

    gpu = parse_bool(_first((LABEL_GPU,), lab, ann))
    if gpu is None and cuda is not None:
        gpu = True

    harbor_labels = tuple(harbor_labels)
    hidden = parse_bool(_first((LABEL_HIDDEN,), lab, ann)) is True or any(
        name == HARBOR_LABEL_HIDDEN for name in harbor_labels
    )
    recommended = parse_bool(_first((LABEL_RECOMMENDED,), lab, ann)) is True or any(
        name == HARBOR_LABEL_RECOMMENDED for name in harbor_labels
    )
    return Hints(
        notebook=_text(_first((LABEL_NOTEBOOK,), lab, ann)),
        runner=_text(_first((LABEL_RUNNER,), lab, ann)),
        display_name=_text(_first(_DISPLAY_KEYS, lab, ann)),
        description=_text(_first(_DESCRIPTION_KEYS, lab, ann)),
        framework=framework,
        cuda=cuda,
        gpu=gpu,
        hidden=hidden,
        recommended=recommended,
    )


# ----------------------------------------------------------------------------- Harbor artifacts


def is_index(artifact: Mapping[str, Any]) -> bool:
    """A multi-arch image index / manifest list (its config lives in its children)."""
    for key in ("manifest_media_type", "media_type"):
        if artifact.get(key) in _INDEX_MEDIA_TYPES:
            return True
    return False


def pick_platform_child(
    references: Sequence[Mapping[str, Any]] | None, os: str = "linux", arch: str = "amd64"
) -> tuple[str, str | None] | None:
    """The child of an index to read labels from: ``os/arch`` first, then any child of ``os``
    (attestation manifests with platform ``unknown/unknown`` are never chosen), then none.
    Returns ``(child_digest, "os/arch")``."""
    fallback: tuple[str, str | None] | None = None
    for ref in references or ():
        digest = ref.get("child_digest")
        if not isinstance(digest, str) or not digest:
            continue
        plat = ref.get("platform") or {}
        r_os, r_arch = plat.get("os"), plat.get("architecture")
        name = f"{r_os}/{r_arch}" if r_os and r_arch else None
        if r_os == os and r_arch == arch:
            return digest, name
        if fallback is None and r_os == os:
            fallback = (digest, name)
    return fallback


def _config(artifact: Mapping[str, Any] | None) -> Mapping[str, Any]:
    extra = (artifact or {}).get("extra_attrs") or {}
    config = extra.get("config") if isinstance(extra, Mapping) else None
    return config if isinstance(config, Mapping) else {}


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _platform_of(artifact: Mapping[str, Any]) -> str | None:
    extra = artifact.get("extra_attrs") or {}
    if isinstance(extra, Mapping) and extra.get("os") and extra.get("architecture"):
        return f"{extra['os']}/{extra['architecture']}"
    return None


def images_from_artifact(
    artifact: Mapping[str, Any],
    *,
    registry: str,
    project: str,
    repository: str,
    child: Mapping[str, Any] | None = None,
) -> list[Image]:
    """One :class:`Image` per tag of a Harbor artifact (``[]`` when untagged, hidden, or not an
    image, e.g. a Helm chart). For an index pass the chosen platform ``child`` artifact: its
    config labels are read, and the index's annotations win over the child's."""
    kind = artifact.get("type")
    if kind is not None and str(kind).upper() != "IMAGE":
        return []
    tags = [t.get("name") for t in artifact.get("tags") or () if isinstance(t, Mapping)]
    tags = [t for t in tags if isinstance(t, str) and t]
    if not tags:
        return []
    source = child if child is not None else artifact
    config = _config(source)
    annotations = {**_dict((child or {}).get("annotations")), **_dict(artifact.get("annotations"))}
    harbor_labels = [
        str(lbl.get("name")) for lbl in artifact.get("labels") or () if isinstance(lbl, Mapping)
    ]
    hints = hints_from_metadata(
        _dict(config.get("Labels")),
        annotations,
        config.get("Env") if isinstance(config.get("Env"), list) else None,
        repository=repository,
        harbor_labels=harbor_labels,
    )
    if hints.hidden:
        return []
    digest = artifact.get("digest") if isinstance(artifact.get("digest"), str) else None
    platform = _platform_of(source)
    base = f"{registry}/{project}/{repository}" if registry else f"{project}/{repository}"
    images = []
    for tag_obj in artifact.get("tags") or ():
        tag = tag_obj.get("name") if isinstance(tag_obj, Mapping) else None
        if not isinstance(tag, str) or not tag:
            continue
        if hints.display_name:
            display = hints.display_name if len(tags) == 1 else f"{hints.display_name} [{tag}]"
        else:
            display = f"{repository}:{tag}"
        images.append(
            Image(
                reference=f"{base}:{tag}",
                project=project,
                repository=repository,
                tag=tag,
                digest=digest,
                display_name=display,
                framework=hints.framework,
                cuda=hints.cuda,
                gpu=bool(hints.gpu),
                description=hints.description or "",
                registry=registry,
                push_time=tag_obj.get("push_time") or artifact.get("push_time"),
                platform=platform,
                recommended=hints.recommended,
                notebook=hints.notebook,
                runner=hints.runner,
            )
        )
    return images


# ----------------------------------------------------------------------------- static entries


def split_reference(ref: str) -> tuple[str, str, str, str, str | None]:
    """``registry/project/repo[/more]:tag[@digest]`` -> (registry, project, repository, tag,
    digest). Docker's rule: the first segment is a registry when it has ``.`` or ``:`` or is
    ``localhost``; else the registry is ``docker.io``. A missing tag is ``latest``.
    Raises :class:`ValueError` with what was wrong."""
    if not isinstance(ref, str) or not ref or ref != ref.strip() or len(ref) > 512:
        raise ValueError(f"image {ref!r}: not an image reference (registry/project/repo:tag)")
    rest, digest = ref, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
    tag = "latest"
    slash, colon = rest.rfind("/"), rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
    parts = rest.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry, path = parts[0], parts[1:]
    else:
        registry, path = "docker.io", parts
    if not path or any(not p for p in path) or not tag:
        raise ValueError(f"image {ref!r}: not an image reference (registry/project/repo:tag)")
    if len(path) == 1:
        path = ["library", *path]
    return registry, path[0], "/".join(path[1:]), tag, digest


def image_from_static(entry: Mapping[str, Any] | Any) -> Image:
    """One entry of ``catalogue.static`` (a dict, or an object with the same attributes such as
    the policy's ``StaticImage``) -> :class:`Image`. Unset hints are read from the name."""
    if not isinstance(entry, Mapping):
        entry = {
            k: getattr(entry, k, None)
            for k in (
                "image",
                "display_name",
                "description",
                "framework",
                "cuda",
                "gpu",
                "recommended",
                "notebook",
                "runner",
            )
        }
    ref = entry.get("image") or entry.get("reference")
    if not isinstance(ref, str):
        raise ValueError("static catalogue entry: 'image' is required (registry/project/repo:tag)")
    registry, project, repository, tag, digest = split_reference(ref)
    cuda = normalise_cuda(entry.get("cuda"))
    gpu = parse_bool(entry.get("gpu"))
    framework = _text(entry.get("framework")) or _framework_from_name(repository)
    return Image(
        reference=ref,
        project=project,
        repository=repository,
        tag=tag,
        digest=digest,
        display_name=_text(entry.get("display_name")) or f"{repository}:{tag}",
        framework=framework.lower() if framework else None,
        cuda=cuda,
        gpu=gpu if gpu is not None else cuda is not None,
        description=_text(entry.get("description")) or "",
        registry=registry,
        recommended=parse_bool(entry.get("recommended")) is True,
        notebook=_static_ready(entry.get("notebook")),
        runner=_static_ready(entry.get("runner")),
    )


def _static_ready(value: Any) -> str | None:
    """A static entry's ``notebook``/``runner``: unset or true = ready (the admin lists images
    they know run), false = lacks it, other text = the version it carries."""
    if value is None or parse_bool(value) is True:
        return "static"
    if parse_bool(value) is False:
        return None
    return _text(value)
