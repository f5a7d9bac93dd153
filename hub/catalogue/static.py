"""The static catalogue source: a list of images from the policy file, for sites without
Harbor and for local mode (``gpulab up``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .model import Image, image_from_static

__all__ = ["StaticSource"]


class StaticSource:
    """Serves a fixed list. Entries are dicts (``image``, ``display_name``, ``description``,
    ``framework``, ``cuda``, ``gpu``) or objects with those attributes (the policy's
    ``StaticImage``); a bad entry raises :class:`ValueError` naming it, at construction."""

    requests = 0  # never talks to a registry

    def __init__(self, entries: Iterable[Mapping[str, Any] | Any] = ()) -> None:
        images: dict[str, Image] = {}
        for n, entry in enumerate(entries):
            try:
                img = image_from_static(entry)
            except ValueError as exc:
                raise ValueError(f"catalogue.static[{n}]: {exc}") from None
            images.setdefault(img.reference, img)  # first wins; order is kept
        self._images = list(images.values())

    @property
    def description(self) -> str:
        return f"static list of {len(self._images)} images"

    async def fetch(self) -> list[Image]:
        return list(self._images)
