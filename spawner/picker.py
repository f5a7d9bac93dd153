"""The spawn page's image choice: a plain select for small catalogues, a searchable picker else.

Pure: the form (:mod:`gpulab.spawner.form`) calls :func:`image_option` once per profile with the
images offered there and :func:`catalogue_json` once per page.

* Up to :data:`PLAIN_SELECT_MAX` images offered on a profile: a plain ``<select>`` with one
  ``<option>`` per image, as gpulab always had; each option's ``title`` carries the image's
  framework, CUDA version and description.
* More: the profile's ``<select>`` keeps only a few options (the default, the user's recent
  images, the recommended ones; at most :data:`FALLBACK_MAX`), so the form submits a valid
  choice without JavaScript, and ``templates/image_picker.html`` replaces it with a combobox
  that searches the whole catalogue. The catalogue reaches the page **once**, whatever the
  number of profiles, as the JSON document of :func:`catalogue_json`, and the picker renders
  only the slice that matches what was typed.

The document (``v`` 1) is compact because a registry's tags come in runs that share everything
but the tag::

    {"v": 1,
     "s": ["", "vision", "pytorch", "12.4", "torchvision, timm", ...],   # strings, "" first
     "r": [[ref_prefix, "tag1 tag2 ...", name_prefix, name_suffix | null,
            group, framework, cuda, description, flags], ...],          # runs of images
     "recent": ["harbor.local/vision/pytorch:2.4", ...]}                 # newest first

An image of a run is ``ref_prefix + tag``, named ``name_prefix + tag + name_suffix`` (just
``name_prefix`` when ``name_suffix`` is null); ``group`` (the Harbor project), ``framework``,
``cuda`` and ``description`` index ``s``; ``flags`` bit 0 is a GPU image, bit 1 recommended.
The picker keeps the catalogue order within a group. The JSON escapes ``<``, ``>`` and ``&``,
so it is safe inside ``<script type="application/json">`` (KubeSpawner renders with
autoescape off); the picker writes every string as text, never as HTML.

What the form posts is checked by admission like any other choice: the picker only helps to
choose.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol

from gpulab.hub.catalogue.model import readiness
from markupsafe import escape

__all__ = [
    "FALLBACK_MAX",
    "PLAIN_SELECT_MAX",
    "RECENT_MAX",
    "CatalogueImage",
    "catalogue_json",
    "image_label",
    "image_option",
    "remember_recent",
]

PLAIN_SELECT_MAX = 20  # a drop-down of this many is still easy to read
FALLBACK_MAX = 10  # options in the picker's select (the choice without JavaScript)
RECENT_MAX = 5  # images a user's spawner remembers


class CatalogueImage(Protocol):
    """What the picker reads of a catalogue image (:class:`gpulab.hub.catalogue.Image`)."""

    reference: str
    display_name: str
    description: str
    gpu: bool
    project: str
    tag: str
    framework: str | None
    cuda: str | None
    recommended: bool


def _e(text: str) -> str:
    return str(escape(text))


def image_label(img: CatalogueImage) -> str:
    """The image's name as researchers read it: display name and reference when they differ."""
    label = img.display_name or img.reference
    if img.display_name and img.display_name != img.reference:
        label = f"{img.display_name} — {img.reference}"
    return label


def _details(img: CatalogueImage) -> str:
    """Framework · CUDA version · description, the parts the catalogue knows."""
    parts = [
        img.framework or "",
        f"CUDA {img.cuda}" if img.cuda else "",
        img.description,
    ]
    return " · ".join(p for p in parts if p)


def remember_recent(recent: Sequence[str], image: str) -> list[str]:
    """``recent`` with ``image`` first, once, at most :data:`RECENT_MAX` long."""
    return [image, *(r for r in recent if r != image)][:RECENT_MAX]


def _fallback(
    offered: Sequence[CatalogueImage], recent: Sequence[str]
) -> tuple[list[CatalogueImage], CatalogueImage]:
    """The few images the picker's select holds, and the one it selects: the user's most recent
    image offered here, else the profile's default (the first offered)."""
    wanted = set(recent)
    found: dict[str, CatalogueImage] = {}
    recommended: list[CatalogueImage] = []
    for img in offered:  # one pass: this runs for every profile on every view
        if img.reference in wanted:
            found.setdefault(img.reference, img)
        elif img.recommended and len(recommended) < FALLBACK_MAX:
            recommended.append(img)
    picked: dict[str, CatalogueImage] = {r: found[r] for r in recent if r in found}
    selected = next(iter(picked.values()), offered[0])
    picked.setdefault(offered[0].reference, offered[0])
    for img in recommended:
        picked.setdefault(img.reference, img)
    return list(picked.values())[:FALLBACK_MAX], selected


def image_option(
    offered: Sequence[CatalogueImage],
    *,
    gpu_only: bool,
    recent: Sequence[str] = (),
    catalogue: str | None = None,
) -> dict[str, Any]:
    """The ``image`` entry of one profile's ``profile_options`` (``offered`` non-empty, in the
    profile's order). With more than :data:`PLAIN_SELECT_MAX` images it carries ``picker``:
    ``gpu_only`` (the profile offers GPU images only) and ``catalogue`` (the page's one
    :func:`catalogue_json` document, the same string object on every profile)."""
    if len(offered) <= PLAIN_SELECT_MAX:
        # ready images first (the first is the default); a not-ready one stays visible,
        # disabled, with what it lacks, so a researcher looking for it learns why
        ordered = sorted(offered, key=lambda img: not readiness(img).notebooks)
        choices = {}
        for i, img in enumerate(ordered):
            reason = readiness(img).notebook_reason
            choice = {
                "display_name": _e(image_label(img) + (f" ({reason})" if reason else "")),
                "default": i == 0 and reason is None,
                "details": _e(_details(img)),
            }
            if reason:
                choice.update(disabled=True, reason=_e(reason))
            choices[img.reference] = choice
        return {"display_name": "Image", "choices": choices}
    # the searchable picker offers only what can start (its count says how many are left out)
    offered = [img for img in offered if readiness(img).notebooks] or list(offered)
    fallback, selected = _fallback(offered, recent)
    choices = {
        img.reference: {
            "display_name": _e(image_label(img)),
            "default": img is selected,
            "details": _e(_details(img)),
        }
        for img in fallback
    }
    return {
        "display_name": "Image",
        "choices": choices,
        "picker": {"gpu_only": gpu_only, "count": len(offered), "catalogue": catalogue or ""},
    }


def _name_parts(img: CatalogueImage, tag: str) -> tuple[str, str | None]:
    name = img.display_name or img.reference
    if tag and name.endswith(f"[{tag}]"):
        return name[: -len(tag) - 1], "]"
    if tag and name.endswith(tag):
        return name[: -len(tag)], ""
    return name, None


def _document_body(images: Sequence[CatalogueImage]) -> str:
    """The document without its closing ``recent`` part: ``{"v":1,"s":[...],"r":[...]``."""
    strings: dict[str, int] = {"": 0}

    def s(text: str | None) -> int:
        return strings.setdefault(text or "", len(strings))

    runs: list[list[Any]] = []
    last_key: tuple[Any, ...] | None = None
    for img in images:
        tag = img.tag if img.tag and img.reference.endswith(f":{img.tag}") else ""
        prefix = img.reference[: len(img.reference) - len(tag)]
        if tag and " " in tag:  # not a registry tag: keep the image on its own
            tag, prefix = "", img.reference
        name_prefix, name_suffix = _name_parts(img, tag)
        flags = (1 if img.gpu else 0) | (2 if img.recommended else 0)
        key = (
            prefix,
            name_prefix,
            name_suffix,
            s(img.project),
            s(img.framework),
            s(img.cuda),
            s(img.description),
            flags,
        )
        if tag and key == last_key:
            runs[-1][1] += f" {tag}"
            continue
        runs.append([prefix, tag, *key[1:]])
        last_key = key if tag else None
    body = json.dumps({"v": 1, "s": list(strings), "r": runs}, separators=(",", ":"))
    return body[:-1]


# The document's body depends only on the images (the same objects until the catalogue
# refreshes) and is the same for every user with the same image rules: built once, kept for a
# few image lists. Each entry keeps its list, so the identities compared stay meaningful.
_BODIES: OrderedDict[tuple[int, int, int], tuple[list[CatalogueImage], str]] = OrderedDict()
_BODIES_KEPT = 8


def _cached_body(images: Sequence[CatalogueImage]) -> str:
    if not images:
        return _document_body(images)
    key = (len(images), id(images[0]), id(images[-1]))
    hit = _BODIES.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], images, strict=True)):
        _BODIES.move_to_end(key)
        return hit[1]
    body = _document_body(images)
    _BODIES[key] = (list(images), body)
    while len(_BODIES) > _BODIES_KEPT:
        _BODIES.popitem(last=False)
    return body


def _script_safe(text: str) -> str:
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def catalogue_json(images: Sequence[CatalogueImage], recent: Sequence[str] = ()) -> str:
    """The page's one catalogue document (module docstring) for ``images``: the images the user
    may choose on any profile, in catalogue order; ``recent``: the user's last images."""
    recent_part = json.dumps(list(recent)[:RECENT_MAX], separators=(",", ":"))
    return _script_safe(f'{_cached_body(images)},"recent":{recent_part}}}')
