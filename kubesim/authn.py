"""Who is asking: static bearer tokens, as kube-apiserver's ``--token-auth-file``.

The file is a CSV with one identity per line, ``token,user,uid,"group1,group2"`` (the
groups column is optional; more columns are ignored), read once at start: like the
apiserver, a changed file takes effect on restart. Every authenticated user is also in
``system:authenticated``; a user named like a service account
(``system:serviceaccount:<ns>:<name>``) also gets the groups the ServiceAccount token
authenticator gives (``system:serviceaccounts`` and ``system:serviceaccounts:<ns>``), since
these static tokens stand for the service account tokens a real cluster would mint.

Impersonation (``Impersonate-User`` / ``Impersonate-Group`` / ``Impersonate-Uid``, what
``kubectl --as`` sends) is parsed here; whether the caller may impersonate is the
authorizer's decision (:func:`gpulab.kubesim.rbac.impersonation_checks`).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gpulab.kubesim.errors import ApiError

log = logging.getLogger("gpulab.kubesim.authn")

AUTHENTICATED = "system:authenticated"
MASTERS = "system:masters"
SA_PREFIX = "system:serviceaccount:"
SA_GROUP = "system:serviceaccounts"


@dataclass(frozen=True)
class UserInfo:
    """An authenticated identity (user.Info upstream)."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        """The ``userInfo`` of a SelfSubjectReview / the ``user`` fields of a review."""
        out: dict[str, object] = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        return out


# Without a token file every request is this user: allowed everything, as kubesim always was.
UNRESTRICTED = UserInfo("system:admin", groups=(MASTERS, AUTHENTICATED))


def service_account(username: str) -> tuple[str, str] | None:
    """(namespace, name) of a service account username, else ``None``."""
    if not username.startswith(SA_PREFIX):
        return None
    namespace, sep, name = username.removeprefix(SA_PREFIX).partition(":")
    if not sep or not namespace or not name or ":" in name:
        return None
    return namespace, name


def complete_groups(username: str, groups: Iterable[str]) -> tuple[str, ...]:
    """The groups as the apiserver presents them: given ones, then the implied ones."""
    out = list(dict.fromkeys(groups))
    implied = []
    if (sa := service_account(username)) is not None:
        implied += [SA_GROUP, f"{SA_GROUP}:{sa[0]}"]
    implied.append(AUTHENTICATED)
    out += [g for g in implied if g not in out]
    return tuple(out)


def unauthorized() -> ApiError:
    """The 401 of a request that names nobody (the apiserver's exact body)."""
    return ApiError(401, "Unauthorized", "Unauthorized")


class TokenFileError(ValueError):
    pass


class TokenAuthenticator:
    """Bearer token -> :class:`UserInfo`, from a token file."""

    def __init__(self, users: Mapping[str, UserInfo]) -> None:
        self._users = dict(users)

    @classmethod
    def from_file(cls, path: Path) -> TokenAuthenticator:
        users: dict[str, UserInfo] = {}
        with path.open(newline="") as f:
            for number, record in enumerate(csv.reader(f, skipinitialspace=True), 1):
                if not record:
                    continue
                if len(record) < 3:
                    raise TokenFileError(
                        f"token file {str(path)!r} must have at least 3 columns "
                        f"(token, user name, user uid), found {len(record)}"
                    )
                token, name, uid = record[0], record[1], record[2]
                if not token:
                    log.warning("empty token in token file %s, record %d", path, number)
                    continue
                if token in users:
                    log.warning("duplicate token in token file %s, record %d", path, number)
                groups = [g for g in record[3].split(",") if g] if len(record) > 3 else []
                users[token] = UserInfo(name, uid, complete_groups(name, groups))
        return cls(users)

    def authenticate(self, authorization: str | None) -> UserInfo | None:
        """The user of an ``Authorization`` header value, ``None`` if it names nobody."""
        if not authorization:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        return self._users.get(token)

    def tokens_of_group(self, group: str) -> list[str]:
        """Tokens whose user is in ``group`` (the admin kubeconfig takes the first)."""
        return [t for t, u in self._users.items() if group in u.groups]


@dataclass(frozen=True)
class Impersonation:
    """What ``Impersonate-*`` headers ask to act as."""

    user: str
    groups: tuple[str, ...] = ()
    uid: str = ""

    def as_user(self) -> UserInfo:
        return UserInfo(self.user, self.uid, complete_groups(self.user, self.groups))


def impersonation(headers: Mapping[str, str], all_groups: list[str]) -> Impersonation | None:
    """The impersonation a request asks for; ``ValueError`` if groups come without a user."""
    user = headers.get("Impersonate-User", "")
    uid = headers.get("Impersonate-Uid", "")
    if not user:
        if all_groups or uid:
            raise ValueError("requested impersonation without a user: Impersonate-User is required")
        return None
    return Impersonation(user, tuple(all_groups), uid)


__all__ = [
    "AUTHENTICATED",
    "MASTERS",
    "UNRESTRICTED",
    "Impersonation",
    "TokenAuthenticator",
    "TokenFileError",
    "UserInfo",
    "complete_groups",
    "impersonation",
    "service_account",
    "unauthorized",
]
