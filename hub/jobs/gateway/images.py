"""``GET /api/v1/images``: the catalogue's images the caller's groups may use (read-only).

What ``gpulab images`` lists on a laptop and the image a job spec or a server start may name:
the same catalogue and the same rule (``Entitlement.image_allowed``) the gateway's admission
applies to a submit, so a listed image is never refused for not being allowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...catalogue.model import Image, readiness
from ...policy import Entitlement
from .handlers import BaseHandler

__all__ = ["ImagesHandler", "allowed_images", "image_routes"]


def allowed_images(images: Iterable[Image], ent: Entitlement) -> list[dict[str, Any]]:
    """The images ``ent`` may use, recommended first, then by reference."""
    chosen = [img for img in images if ent.image_allowed(img.reference)]
    chosen.sort(key=lambda img: (not img.recommended, img.reference))
    return [
        {
            "image": img.reference,
            "display_name": img.display_name,
            "description": img.description,
            "framework": img.framework,
            "cuda": img.cuda,
            "gpu": img.gpu,
            "recommended": img.recommended,
            # what it can run (docs/catalogue.md): false = it lacks the Jupyter server / runner
            "ready": {"notebooks": readiness(img).notebooks, "jobs": readiness(img).jobs},
        }
        for img in chosen
    ]


class ImagesHandler(BaseHandler):
    async def get(self) -> None:
        ent = self.gateway.entitlement(self.ident)
        catalogue = self.gateway.catalogue
        images = await catalogue.images() if catalogue is not None else []
        self.write_json({"items": allowed_images(images, ent)})


def image_routes(prefix: str) -> list[tuple[str, type]]:
    return [(prefix + "api/v1/images", ImagesHandler)]
