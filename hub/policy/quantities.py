"""Durations (``90s``, ``30m``, ``24h``, ``7d``, ``1h30m`` or integer seconds) and Kubernetes
quantities (``8Gi``, ``500m``, ``1.5``, ``1e3``): parsing, validation and formatting.

Pure functions, used by the policy models and by the spawner, the gateway and the culler.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation

__all__ = [
    "DURATION_UNITS",
    "cpu_millicores",
    "format_bytes",
    "format_cpu",
    "format_duration",
    "parse_duration",
    "parse_quantity",
    "quantity_bytes",
]

# ----------------------------------------------------------------------------- durations

DURATION_UNITS: dict[str, int] = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION_PART = re.compile(r"(\d+)([wdhms])")
_DURATION_FULL = re.compile(r"(?:\d+[wdhms])+")


def parse_duration(value: object) -> int:
    """Seconds in a duration: an int (seconds), a digit string, or ``90s``, ``30m``, ``24h``,
    ``7d``, ``2w`` and combinations such as ``1h30m``. Negative values are refused.

    Raises :class:`ValueError` with a message that says what is accepted.
    """
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like 90s, 30m, 24h, 7d")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return value
    if isinstance(value, float):
        if value < 0 or not value.is_integer():
            raise ValueError("a duration in seconds must be a whole, non-negative number")
        return int(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit():
            return int(text)
        if text and _DURATION_FULL.fullmatch(text):
            return sum(int(n) * DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))
    raise ValueError(
        "not a duration (use seconds as an integer, or a string like 90s, 30m, 24h, 7d, 1h30m)"
    )


def format_duration(seconds: float | timedelta) -> str:
    """``5400 -> '1h30m'``, ``3900 -> '1h5m'``, ``0 -> '0s'``: whole seconds (a fraction is
    dropped, a negative value is ``0s``), largest unit first, zero units left out. The inverse
    of :func:`parse_duration` (no weeks), so an admin reads durations as the policy spells
    them, in messages and on the dashboard alike."""
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    rest = max(0, int(seconds))
    if rest == 0:
        return "0s"
    out = []
    for unit in ("d", "h", "m", "s"):
        n, rest = divmod(rest, DURATION_UNITS[unit])
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)


# ----------------------------------------------------------------------------- quantities

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
}
# The Kubernetes quantity grammar: <signedNumber><suffix>, suffix binary, decimal or exponent.
_QUANTITY = re.compile(
    r"(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?"
)
QUANTITY_HELP = "a Kubernetes quantity such as 512Mi, 8Gi, 1.5, 500m or 1e9"


def parse_quantity(value: object) -> Decimal:
    """The exact value of a Kubernetes quantity (``'8Gi' -> Decimal(8589934592)``,
    ``'500m' -> Decimal('0.5')``). Ints and floats are taken as plain numbers.

    Raises :class:`ValueError` if it is not a quantity.
    """
    if isinstance(value, bool):
        raise ValueError(f"not {QUANTITY_HELP}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not {QUANTITY_HELP}")
        return Decimal(str(value))
    if not isinstance(value, str):
        raise ValueError(f"not {QUANTITY_HELP}")
    match = _QUANTITY.fullmatch(value.strip())
    if not match:
        raise ValueError(f"not {QUANTITY_HELP}")
    try:
        number = Decimal(match["num"])
    except InvalidOperation as exc:  # pragma: no cover - the regex only lets numbers through
        raise ValueError(f"not {QUANTITY_HELP}") from exc
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number * (Decimal(10) ** int(suffix[1:]))


def quantity_bytes(value: object) -> int:
    """A size in whole bytes, rounded up (``'1Gi' -> 1073741824``); negative sizes refused."""
    q = parse_quantity(value)
    if q < 0:
        raise ValueError("a size cannot be negative")
    return int(q.to_integral_value(rounding="ROUND_CEILING"))


def cpu_millicores(value: object) -> int:
    """CPU in millicores, rounded up (``'500m' -> 500``, ``2 -> 2000``, ``'1.5' -> 1500``)."""
    q = parse_quantity(value)
    if q < 0:
        raise ValueError("a CPU amount cannot be negative")
    return int((q * 1000).to_integral_value(rounding="ROUND_CEILING"))


def format_bytes(n: int) -> str:
    """The shortest exact binary quantity: ``8589934592 -> '8Gi'``, ``1000 -> '1000'``."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _BINARY[suffix]
        if n and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)


def format_cpu(millicores: int) -> str:
    """``2000 -> '2'``, ``500 -> '500m'``."""
    if millicores % 1000 == 0:
        return str(millicores // 1000)
    return f"{millicores}m"
