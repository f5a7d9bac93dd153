"""What an image of the catalogue can run.

  gpulab admin image check REF --policy POLICY

reads the catalogue the policy configures (Harbor, with the credentials from the environment
variables the policy names, or the static list), finds REF and says whether it is ready for
notebook servers (label ``org.gpulab.notebook``) and for jobs (label ``org.gpulab.runner``),
what it lacks and the way out (docs/catalogue.md). Exit status: 0 ready for both, 1 lacking
something, 2 not in the catalogue or the catalogue unreadable (the reason on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

NOT_FOUND = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="image_command", metavar="IMAGE_COMMAND", required=True)
    check = sub.add_parser("check", help="explain what an image lacks to run servers or jobs")
    check.add_argument("ref", metavar="REF", help="the image reference, registry/project/repo:tag")
    check.add_argument("--policy", required=True, help="the policy YAML file (its catalogue)")


def explain(img: Any, source: str) -> tuple[list[str], bool]:
    """The report's lines for a catalogue image, and whether it is ready for both."""
    from gpulab.hub.catalogue.model import LABEL_NOTEBOOK, LABEL_RUNNER, readiness

    state = readiness(img)
    lines = [f"{img.reference} (from {source})"]
    if state.notebooks:
        lines.append(f"  notebooks: ready (Jupyter server {img.notebook})")
    else:
        lines.append(
            f"  notebooks: not ready: missing the Jupyter server ({LABEL_NOTEBOOK} unset); "
            "the spawn page shows it disabled"
        )
    if state.jobs:
        lines.append(f"  jobs:      ready (gpulab-job-runner {img.runner})")
    else:
        lines.append(
            f"  jobs:      not ready: missing the job runner ({LABEL_RUNNER} unset); "
            "the jobs gateway refuses it as a job image"
        )
    if state.missing:
        lines.append(
            "  way out:   build images/framework/Dockerfile with "
            f"--build-arg BASE={img.reference}, push it and pick the new image"
        )
    return lines, not state.missing


async def check(source: Any, ref: str) -> tuple[list[str], int]:
    """Fetch ``source`` (an ImageSource) once and explain ``ref``: (lines, exit status).
    Raises the source's CatalogueError when the registry cannot be read."""
    images = await source.fetch()
    found = next((img for img in images if img.reference == ref), None)
    if found is None:
        return [
            f"{ref}: not in the catalogue ({source.description}): a hidden image, another "
            "registry host, or a project the catalogue does not read"
        ], NOT_FOUND
    lines, ready = explain(found, source.description)
    return lines, 0 if ready else 1


def run(args: argparse.Namespace) -> int:
    from gpulab.hub.catalogue import CatalogueError, catalogue_from_policy
    from gpulab.hub.policy import PolicyError, load_policy

    try:
        catalogue = catalogue_from_policy(load_policy(args.policy))
        lines, status = asyncio.run(check(catalogue.source, args.ref))
    except (PolicyError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return NOT_FOUND
    except CatalogueError as exc:
        print(f"cannot read the catalogue: {exc}", file=sys.stderr)
        return NOT_FOUND
    print("\n".join(lines))
    return status
