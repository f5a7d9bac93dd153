"""Global flags, accepted anywhere on the line like gh's and kubectl's.

``gpulab jobs list -o json``, ``gpulab -o json jobs list`` and ``gpulab jobs -o json list`` are
the same command. The flags are taken out of the line before argparse sees it, so no subcommand
has to declare them; everything after ``--`` is left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

__all__ = ["OUTPUT_FORMATS", "GlobalOptions", "UsageError", "split_global_flags"]

OUTPUT_FORMATS = ("table", "wide", "json", "yaml")

# flag -> the GlobalOptions field it sets (each takes a value)
_VALUED = {"--hub-url": "hub_url", "--token": "token", "-o": "output", "--output": "output"}
# flag -> (field, value): switches kept for scripts written before -o existed
_SWITCHES = {"--json": ("output", "json")}


class UsageError(ValueError):
    """A mistake on the command line (exit code 2)."""


@dataclass(frozen=True)
class GlobalOptions:
    hub_url: str | None = None
    token: str | None = None
    output: str = "table"

    @property
    def machine(self) -> bool:
        """Output for programs (JSON or YAML): no hints, no progress, errors as JSON."""
        return self.output in ("json", "yaml")


def split_global_flags(argv: Sequence[str]) -> tuple[GlobalOptions, list[str]]:
    """The global options on the line, and the line without them."""
    options = GlobalOptions()
    rest: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            rest.extend(argv[i:])
            break
        flag, eq, inline = word.partition("=")
        if word in _SWITCHES:
            field, value = _SWITCHES[word]
            options = replace(options, **{field: value})
        elif flag in _VALUED and (eq or flag == word):
            if eq:
                value = inline
            elif i + 1 < len(argv):
                i += 1
                value = argv[i]
            else:
                raise UsageError(f"{flag} needs a value")
            options = replace(options, **{_VALUED[flag]: value})
        elif word.startswith("-o") and len(word) > 2 and not word.startswith("--"):
            options = replace(options, output=word[2:])  # -ojson, as kubectl takes it
        else:
            rest.append(word)
        i += 1
    if options.output not in OUTPUT_FORMATS:
        raise UsageError(
            f"-o {options.output!r}: choose one of {', '.join(OUTPUT_FORMATS)} (default: table)"
        )
    return options, rest
