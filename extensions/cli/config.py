"""The login store: the hub URL, the user and their API token, in a file only they can read.

``$XDG_CONFIG_HOME/gpulab/hosts.json`` (default ``~/.config/gpulab/hosts.json``), mode 0600 in
a 0700 folder, written whole or not at all (a temporary file renamed over the old one).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["Login", "LoginStore", "config_dir"]

FILE_NAME = "hosts.json"


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """gpulab's folder in the user's configuration (the XDG base directory rules)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "gpulab"


@dataclass(frozen=True)
class Login:
    hub_url: str
    token: str
    user: str = ""


class LoginStore:
    """One login (the hub last logged in to); a second ``gpulab login`` replaces it."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or config_dir()
        self.path = self.directory / FILE_NAME

    def load(self) -> Login | None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # unreadable or damaged: as if logged out; login writes it anew
        if not isinstance(data, dict):
            return None
        hub, token = data.get("hub_url"), data.get("token")
        if not isinstance(hub, str) or not isinstance(token, str) or not hub or not token:
            return None
        user = data.get("user")
        return Login(hub, token, user if isinstance(user, str) else "")

    def save(self, login: Login) -> Path:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{FILE_NAME}.{os.getpid()}")
        # Created 0600 from the start: the token is never readable by others, not even briefly.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(asdict(login), fh, indent=2)
                fh.write("\n")
            os.chmod(temporary, 0o600)  # an umask cannot widen it, but an old file might be
            os.replace(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return self.path

    def clear(self) -> Login | None:
        """Forget the login; returns what was forgotten."""
        login = self.load()
        self.path.unlink(missing_ok=True)
        return login
