"""Kubernetes-safe names for JupyterHub users (``gpulab.io/user`` labels, PVC and pod names).

:func:`escape_username` maps any username to a DNS-1123 label (lowercase letters, digits and
``-``, at most 63 characters, starting and ending with a letter or digit), which is also a
valid label value. It is stable (same input, same output, across processes and versions) and
injective:

* ``[a-z0-9]`` characters are kept; every other UTF-8 byte becomes ``-`` and two lowercase hex
  digits, in KubeSpawner's escapism style (``bob.smith -> bob-2esmith``,
  ``Alice -> -41lice``). A ``-`` in the result is therefore always followed by two hex
  digits, so ``--`` never appears, and the escaping can be undone.
* When that result is not a valid label (it starts with ``-``, is empty, or is longer than
  63), the name becomes ``<readable prefix>--<hash>``: a lowercased, letters-and-digits prefix
  and 12 hex digits of the SHA-256 of the username. Only these hashed forms contain ``--``, so
  they never collide with escaped forms; two hashed forms collide only on a 48-bit hash
  collision.
"""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "escape_username",
    "is_dns_label",
    "is_dns_subdomain",
    "is_label_value",
    "join_label",
    "username_label",
]

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_HASH_LEN = 12
MAX_LABEL = 63


def is_dns_label(name: object) -> bool:
    """True for an RFC 1123 label: ``[a-z0-9]([-a-z0-9]*[a-z0-9])?``, at most 63 characters."""
    return isinstance(name, str) and len(name) <= MAX_LABEL and bool(_DNS_LABEL.fullmatch(name))


def is_dns_subdomain(name: object) -> bool:
    """True for an RFC 1123 subdomain (dot-separated labels, at most 253 characters)."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= 253
        and all(_DNS_LABEL.fullmatch(part) for part in name.split("."))
    )


def is_label_value(value: object) -> bool:
    """True for a Kubernetes label value (may be empty; at most 63 characters)."""
    return (
        isinstance(value, str) and len(value) <= MAX_LABEL and bool(_LABEL_VALUE.fullmatch(value))
    )


def _escape(name: str) -> str:
    out = []
    for ch in name:
        if ch in _SAFE:
            out.append(ch)
        else:
            out.extend(f"-{b:02x}" for b in ch.encode("utf-8", "surrogatepass"))
    return "".join(out)


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LEN]


def escape_username(name: str, max_length: int = MAX_LABEL) -> str:
    """The DNS-1123 label for a username (see the module docstring). ``max_length`` (at least
    20) leaves room for a prefix or suffix, e.g. ``escape_username(n, 63 - len('jupyter-'))``.
    """
    if max_length < 20:
        raise ValueError("max_length must be at least 20")
    escaped = _escape(name)
    if escaped and len(escaped) <= max_length and is_dns_label(escaped):
        return escaped
    readable = "".join(ch for ch in name.lower() if ch in _SAFE)
    readable = readable[: max_length - _HASH_LEN - 2] or "u"
    return f"{readable}--{_digest(name)}"


def username_label(name: str) -> str:
    """The ``gpulab.io/user`` label value: the same string as :func:`escape_username`, so that
    one value serves in names and in label selectors."""
    return escape_username(name)


def join_label(*parts: str, max_length: int = MAX_LABEL) -> str:
    """Join already-safe parts with ``-`` into a DNS label; when too long, keep a prefix and
    add a hash of the whole (``join_label('job', user, job_id)``)."""
    joined = "-".join(p for p in parts if p)
    if is_dns_label(joined) and len(joined) <= max_length:
        return joined
    if not all(is_dns_label(p) for p in parts if p):
        raise ValueError(f"{joined!r}: every part must be a DNS label")
    prefix = joined[: max_length - _HASH_LEN - 1].rstrip("-")
    return f"{prefix}-{_digest(joined)}"
