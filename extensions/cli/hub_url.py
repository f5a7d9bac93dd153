"""The hub's base URL from whatever people paste: the address bar of any hub or server page.

``https://hub.example.org/hub/home``, ``https://hub.example.org/user/alice/lab?token=...`` and
``https://hub.example.org`` all mean the hub at ``https://hub.example.org``. A hub under a
prefix (``https://example.org/jupyter/hub/home``) keeps its prefix. With per-user subdomains a
server's page is on ``alice.<hub host>`` and a service's on ``<name>--service.<hub host>``:
both lead back to the hub's own host.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["HubUrlError", "normalise_hub_url"]

# Path segments where JupyterHub's own routes begin: what precedes them is the hub's prefix.
_HUB_SEGMENTS = ("hub", "user", "users", "services", "user-redirect")


class HubUrlError(ValueError):
    """Not something a hub URL can be read from."""


def normalise_hub_url(text: str) -> str:
    """The hub's base URL (scheme, host, port, prefix; no trailing slash)."""
    raw = text.strip()
    if not raw:
        raise HubUrlError("the hub URL is empty")
    if "://" not in raw:
        # What people type: "hub.example.org"; plain http only for a local hub.
        local = raw.startswith(("localhost", "127.", "[::1]"))
        raw = ("http://" if local else "https://") + raw
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HubUrlError(f"{text.strip()[:200]!r} is not an http(s) URL of a hub")
    segments = [s for s in parts.path.split("/") if s]
    cut = next((i for i, s in enumerate(segments) if s in _HUB_SEGMENTS), len(segments))
    prefix = segments[:cut]
    netloc = _hub_host(parts.netloc, segments[cut : cut + 2])
    path = "/" + "/".join(prefix) if prefix else ""
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def _hub_host(netloc: str, route: list[str]) -> str:
    """The hub's host for a page served on a user's or a service's own subdomain."""
    userinfo, _, hostport = netloc.rpartition("@")
    first, dot, rest = hostport.partition(".")
    if not dot or not rest:
        return netloc
    on_own_subdomain = first.endswith("--service") or (
        len(route) == 2 and route[0] == "user" and first.lower() == route[1].lower()
    )
    if not on_own_subdomain:
        return netloc
    return f"{userinfo}@{rest}" if userinfo else rest
