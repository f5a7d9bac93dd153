"""Errors of the policy package: every problem is one human line ``path: value: what is allowed``."""

from __future__ import annotations

from collections.abc import Iterable


class PolicyError(Exception):
    """The policy is not valid. ``problems`` lists every problem found, one line each.

    Not a :class:`ValueError` on purpose: raised inside a pydantic validator it propagates
    unchanged instead of being folded into a single pydantic error.
    """

    def __init__(self, problems: Iterable[str], source: str | None = None) -> None:
        self.problems: list[str] = list(dict.fromkeys(problems)) or ["invalid policy"]
        self.source = source
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        n = len(self.problems)
        head = f"{where}invalid policy ({n} problem{'s' if n != 1 else ''})"
        return head + "".join(f"\n  {p}" for p in self.problems)
