"""Kubernetes resource quantities (``500m``, ``8Gi``, ``1e3``) as exact numbers."""

from __future__ import annotations

import re
from fractions import Fraction

_SUFFIX = {
    "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": Fraction(1),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18),
    "Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30), "Ti": Fraction(2**40),
    "Pi": Fraction(2**50), "Ei": Fraction(2**60),
}  # fmt: skip
_RE = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$")


def parse_quantity(value: str | int | float) -> Fraction:
    """The exact value of a quantity; ValueError if it is not one."""
    if isinstance(value, int | float):
        return Fraction(value)
    m = _RE.match(str(value).strip())
    if not m:
        raise ValueError(f"quantities must match the regular expression '{_RE.pattern}'")
    number = Fraction(m.group(1))
    if m.group(2):
        return number * Fraction(10) ** int(m.group(2)[1:])
    return number * _SUFFIX[m.group(3) or ""]


def format_quantity(value: Fraction, binary: bool = False) -> str:
    """Canonical-ish form: whole numbers plain (or Ki/Mi/Gi when ``binary``), else millis."""
    if value.denominator == 1:
        n = int(value)
        if binary and n:
            for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
                unit = int(_SUFFIX[suffix])
                if n % unit == 0:
                    return f"{n // unit}{suffix}"
        return str(n)
    millis = value * 1000
    if millis.denominator == 1:
        return f"{int(millis)}m"
    return f"{int(value * 10**9)}n"
