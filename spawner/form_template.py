"""The spawn form's templates, compiled once per hub process.

KubeSpawner renders its profile form with a new jinja ``Environment`` on every view, so each
spawn page compiled ``form.html`` and everything it includes again: most of a render's time
(about 150 ms of 185 ms at 5,000 images on a loaded 2-core machine). This is the same
environment (gpulab's template folders first, then KubeSpawner's own templates; no autoescape;
``tojson`` keeping dict order), kept per list of folders; jinja's cache recompiles a template
whose file changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader

__all__ = ["render_profile_form"]


@lru_cache(maxsize=8)
def _environment(paths: tuple[str, ...]) -> Environment:
    env = Environment(
        loader=ChoiceLoader(
            [FileSystemLoader(list(paths)), PackageLoader("kubespawner", "templates")]
        )
    )
    env.policies["json.dumps_kwargs"] = {"sort_keys": False}  # as KubeSpawner: profile order
    return env


def render_profile_form(
    paths: Sequence[str], profile_list: list[dict[str, Any]], user_options: Any
) -> str:
    """``form.html`` from ``paths`` (or KubeSpawner's), with KubeSpawner's template variables."""
    template = _environment(tuple(paths)).get_template("form.html")
    return template.render(profile_list=profile_list, user_options=user_options)
