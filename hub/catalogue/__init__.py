"""The image catalogue: which images researchers can pick (docs/catalogue.md).

```python
from gpulab.hub.catalogue import Catalogue, Image, catalogue_from_config, catalogue_from_policy

catalogue = catalogue_from_policy(policy)     # or catalogue_from_config("harbor", harbor_url=...)
await catalogue.start()                       # background refresh
images: list[Image] = await catalogue.images()  # never raises; from memory when warm
```
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .cache import Catalogue, CatalogueStats, ImageSource
from .harbor import HarborSource
from .model import CatalogueError, Hints, Image, hints_from_metadata
from .static import StaticSource

__all__ = [
    "Catalogue",
    "CatalogueError",
    "CatalogueStats",
    "HarborSource",
    "Hints",
    "Image",
    "ImageSource",
    "StaticSource",
    "catalogue_from_config",
    "catalogue_from_policy",
    "hints_from_metadata",
]


def catalogue_from_config(
    source: str,
    *,
    static: Iterable[Mapping[str, Any] | Any] | None = None,
    harbor_url: str | None = None,
    projects: Sequence[str] = (),
    username: str | None = None,
    password: str | None = None,
    refresh_seconds: float = 300.0,
    registry: str | None = None,
    verify_tls: bool = True,
    timeout_seconds: float = 10.0,
    overall_timeout_seconds: float = 120.0,
    concurrency: int = 8,
    first_load_timeout: float = 5.0,
    retry_seconds: float = 30.0,
) -> Catalogue:
    """A :class:`Catalogue` from plain values. ``source`` is ``"static"`` (``static``: a list
    of dicts/objects with ``image``, ``display_name``, ``description``, ``framework``, ``cuda``,
    ``gpu``) or ``"harbor"`` (``harbor_url``; ``projects`` empty = every project the account
    sees; ``username``/``password``: a robot account, e.g. ``robot$gpulab``, or None for
    anonymous). Raises :class:`ValueError` on a bad configuration. Does no I/O."""
    if source == "static":
        backend: ImageSource = StaticSource(static or ())
    elif source == "harbor":
        if not harbor_url:
            raise ValueError("catalogue.harbor.url is required when catalogue.source is harbor")
        backend = HarborSource(
            harbor_url,
            projects=projects,
            username=username,
            password=password,
            registry=registry,
            verify_tls=verify_tls,
            timeout_seconds=timeout_seconds,
            overall_timeout_seconds=overall_timeout_seconds,
            concurrency=concurrency,
        )
    else:
        raise ValueError(f"catalogue.source: {source!r} is not one of: static, harbor")
    return Catalogue(
        backend,
        refresh_seconds=refresh_seconds,
        first_load_timeout=first_load_timeout,
        retry_seconds=retry_seconds,
    )


def catalogue_from_policy(policy: Any, environ: Mapping[str, str] | None = None) -> Catalogue:
    """A :class:`Catalogue` from ``policy.catalogue`` (gpulab.hub.policy's ``CatalogueConfig``,
    read by attribute, so this module does not import the policy package). Harbor credentials
    come from the environment variables the policy names (``username_env``/``password_env``)."""
    cfg = policy.catalogue
    env = os.environ if environ is None else environ
    harbor = getattr(cfg, "harbor", None)
    if cfg.source == "harbor":
        if harbor is None:
            raise ValueError("catalogue.harbor is required when catalogue.source is harbor")
        username = env.get(harbor.username_env) or None
        password = env.get(harbor.password_env) or None
        if not (username and password):
            username = password = None
        return catalogue_from_config(
            "harbor",
            harbor_url=harbor.url,
            projects=tuple(harbor.projects),
            username=username,
            password=password,
            refresh_seconds=cfg.refresh_seconds,
            verify_tls=getattr(harbor, "verify_tls", True),
            timeout_seconds=getattr(harbor, "timeout_seconds", 10.0),
        )
    return catalogue_from_config(
        "static", static=tuple(cfg.static), refresh_seconds=cfg.refresh_seconds
    )
