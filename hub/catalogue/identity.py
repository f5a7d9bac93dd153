"""The dashboard's catalogue field: does Harbor recognise the catalogue's credentials?

The catalogue lives in the hub (and the jobs gateway); the dashboard is served by the culler
service. Rather than carry the hub's catalogue state across processes, the service asks Harbor
the same question the catalogue asks before each load (``GET /users/current``, one request) at
most every ``interval`` seconds, with the credentials the policy names, and shows the answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from . import catalogue_from_policy
from .harbor import HarborSource

__all__ = ["IdentityCheck"]

log = logging.getLogger("gpulab.catalogue")


class IdentityCheck:
    """``await status()`` -> ``{"source": ..., "problem": str | None}`` (None for a static
    catalogue). Never raises; answers from memory between checks."""

    def __init__(
        self,
        policy_of: Callable[[], Any],
        *,
        interval: float = 60.0,
        timeout: float = 10.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.policy_of = policy_of
        self.interval = interval
        self.timeout = timeout
        self.environ = environ
        self._checked = float("-inf")  # monotonic
        self._key: Any = None
        self._status: dict[str, Any] | None = None

    async def status(self) -> dict[str, Any] | None:
        policy = self.policy_of()
        key = getattr(policy, "catalogue", None)
        if key == self._key and time.monotonic() - self._checked < self.interval:
            return self._status
        self._key, self._checked = key, time.monotonic()
        try:
            source = catalogue_from_policy(policy, self.environ).source
        except (ValueError, AttributeError):
            self._status = None  # the policy check reports a bad catalogue section
            return None
        if not isinstance(source, HarborSource):
            self._status = None
            return None
        try:
            async with asyncio.timeout(self.timeout):
                problem = await source.identity_problem()
        except TimeoutError:
            problem = None  # Harbor slow: the catalogue's own load error says so
        if problem and (self._status or {}).get("problem") != problem:
            log.warning("catalogue misconfigured: %s", problem)
        self._status = {"source": source.description, "problem": problem}
        return self._status
