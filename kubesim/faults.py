"""Fault injection for reliability tests: latency, error answers, cut and expired watches.

Off by default. Tests set it at runtime through ``POST /kubesim/faults`` (and clear it with
``DELETE /kubesim/faults``); the admin endpoints themselves are never faulted.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from gpulab.kubesim.errors import ApiError


@dataclass
class Faults:
    latency_ms: float = 0.0
    error_rate: float = 0.0  # fraction of matching requests answered with an error
    error_codes: list[int] = field(default_factory=lambda: [500, 503, 429])
    cut_watches_after_s: float | None = None
    gone_next_watch: bool = False  # the next matching watch gets a 410 ERROR event
    match: str | None = None  # regex on the request path; None = every API request
    _pattern: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def applies(self, path: str) -> bool:
        if self.match is None:
            return True
        if self._pattern is None:
            self._pattern = re.compile(self.match)
        return bool(self._pattern.search(path))

    def pick_error(self, rng: random.Random) -> ApiError | None:
        if self.error_rate <= 0 or rng.random() >= self.error_rate:
            return None
        code = rng.choice(self.error_codes or [500])
        reason, message = _ERRORS.get(code, ("InternalError", "injected fault"))
        err = ApiError(code, reason, f"{message} (injected by kubesim)")
        if code in (429, 503):
            err.details = {"retryAfterSeconds": 1}
        return err

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("_pattern", None)
        return d


_ERRORS = {
    500: ("InternalError", "Internal error occurred: injected fault"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    429: (
        "TooManyRequests",
        "the server has received too many requests and has asked us to try again later",
    ),
    504: ("Timeout", "the server was unable to return a response in the time allotted"),
}


def parse_faults(body: Any) -> Faults:
    if not isinstance(body, dict):
        raise ValueError("faults must be a JSON object")
    allowed = set(Faults.__dataclass_fields__) - {"_pattern"}
    unknown = set(body) - allowed
    if unknown:
        raise ValueError(f"unknown fault settings: {sorted(unknown)}; allowed: {sorted(allowed)}")
    numbers = ("latency_ms", "error_rate", "cut_watches_after_s")
    for key in numbers:
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"{key} must be a number")
    codes = body.get("error_codes", [])
    if not isinstance(codes, list) or not all(isinstance(c, int) and 400 <= c < 600 for c in codes):
        raise ValueError("error_codes must be a list of HTTP error codes (400-599)")
    if not isinstance(body.get("gone_next_watch", False), bool):
        raise ValueError("gone_next_watch must be true or false")
    if body.get("match") is not None and not isinstance(body["match"], str):
        raise ValueError("match must be a regular expression string")
    faults = Faults(**body)
    if faults.match:
        re.compile(faults.match)
    if not 0 <= faults.error_rate <= 1:
        raise ValueError("error_rate must be between 0 and 1")
    return faults
