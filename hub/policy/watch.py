"""The policy's watch step: :class:`PolicyFile`, a mounted policy file reloaded when its
content changes, keeping the last good policy when an edit is broken (in memory while
running, and on disk for the next start: :mod:`.last_good`)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .document import Policy
from .errors import PolicyError
from .last_good import read_last_good, save_last_good
from .load import read_policy_file
from .parse import parse_policy

__all__ = ["PolicyFile"]


Listener = Callable[["Policy"], object]


class PolicyFile:
    """A policy file that is reloaded when it changes, keeping the last good policy.

    The first load happens in the constructor. If the file does not load, the last good copy
    (:mod:`.last_good`) is used instead, with an ERROR log naming the file, every problem and
    the copy; :attr:`degraded` and :attr:`problems` say so until the file loads again. With
    no last good copy the constructor raises the file's :class:`PolicyError`. After that, a broken edit is logged (once per distinct content, with every problem),
    recorded in :attr:`last_error`, and the previous policy stays in force.
    ConfigMap mounts replace the file by swapping a ``..data`` symlink: :meth:`watch`
    compares the content's SHA-256, so the swap is seen whatever the timestamps say.
    """

    def __init__(
        self,
        path: str | Path,
        log: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        on_change: Listener | None = None,
    ) -> None:
        self.path = Path(path)
        self.log = log or logging.getLogger("gpulab.policy")
        self._listeners: list[Listener] = [on_change] if on_change else []
        self.last_error: PolicyError | None = None
        self._task: asyncio.Task[None] | None = None
        # The last good copy in force instead of the file (None: the file's own content).
        self.fallback: Path | None = None
        seen = "unreadable"  # what check() compares the file with: no second log of it
        try:
            data = self._read()
            seen = hashlib.sha256(data).hexdigest()
            self._policy = parse_policy(data, str(self.path))
        except PolicyError as exc:
            data = self._start_from_last_good(exc)
        else:
            save_last_good(self.path, data)
        self._good_hash = hashlib.sha256(data).hexdigest()
        self._seen_hash = seen
        self.version = 1
        self.loaded_at = time.time()
        for warning in self._policy.warnings:
            self.log.warning("policy %s: %s", self.path, warning)

    def _start_from_last_good(self, exc: PolicyError) -> bytes:
        """The last good copy's content, in force instead of the broken file; re-raises
        ``exc`` when there is no usable copy."""
        found = read_last_good(self.path)
        if found is None:
            raise exc
        copy, data = found
        try:
            self._policy = parse_policy(data, str(copy))
        except PolicyError as copy_exc:
            self.log.error("policy %s: the last good copy %s does not load either", self.path, copy)
            raise exc from copy_exc
        self.fallback = copy
        self.last_error = exc
        self.log.error(
            "policy %s does not load (%d problem%s):\n  %s\n"
            "RUNNING DEGRADED on the last good copy %s until the file is fixed",
            self.path,
            len(exc.problems),
            "" if len(exc.problems) == 1 else "s",
            "\n  ".join(exc.problems),
            copy,
        )
        return data

    @property
    def degraded(self) -> bool:
        """True while the policy in force is the last good copy, not the file (the file did
        not load at start and has not loaded since)."""
        return self.fallback is not None

    @property
    def problems(self) -> list[str]:
        """The file's problems while it does not load (the policy in force is older)."""
        return list(self.last_error.problems) if self.last_error else []

    def status(self) -> dict[str, Any]:
        """What an admin page shows about the policy in force (JSON-ready)."""
        return {
            "path": str(self.path),
            "version": self.version,
            "loaded_at": self.loaded_at,
            "degraded": self.degraded,
            "fallback": str(self.fallback) if self.fallback else None,
            "problems": self.problems,
        }

    @property
    def policy(self) -> Policy:
        """The policy in force (the last one that validated)."""
        return self._policy

    @property
    def content_hash(self) -> str:
        return self._good_hash

    def add_listener(self, callback: Listener) -> None:
        """``callback(policy)`` runs after each successful reload (errors are logged)."""
        self._listeners.append(callback)

    def _read(self) -> bytes:
        return read_policy_file(self.path)

    def reload(self) -> bool:
        """Read the file again. True if the policy in force is the file's content (changed or
        not); False if the file is unreadable or invalid (the last good policy is kept)."""
        try:
            data = self._read()
        except PolicyError as exc:
            return self._reject(exc, None)
        return self._apply(data)

    def _reject(self, exc: PolicyError, digest: str | None) -> bool:
        if digest is None or digest != self._seen_hash:
            self.log.error(
                "policy %s: change rejected, keeping version %d (%d problem%s):\n  %s",
                self.path,
                self.version,
                len(exc.problems),
                "" if len(exc.problems) == 1 else "s",
                "\n  ".join(exc.problems),
            )
        if digest is not None:
            self._seen_hash = digest
        self.last_error = exc
        return False

    def _apply(self, data: bytes) -> bool:
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._good_hash:
            if self.fallback is not None:  # the file now holds the copy in force: fixed
                self.log.warning("policy %s: loads again; no longer degraded", self.path)
                self.fallback = None
                save_last_good(self.path, data)
            self._seen_hash = digest
            self.last_error = None
            return True
        try:
            policy = parse_policy(data, str(self.path))
        except PolicyError as exc:
            return self._reject(exc, digest)
        self._policy = policy
        self._good_hash = self._seen_hash = digest
        self.version += 1
        self.loaded_at = time.time()
        self.last_error = None
        if self.fallback is not None:
            self.log.warning("policy %s: loads again; no longer degraded", self.path)
            self.fallback = None
        save_last_good(self.path, data)
        self.log.info("policy %s: loaded version %d", self.path, self.version)
        for warning in policy.warnings:
            self.log.warning("policy %s: %s", self.path, warning)
        for callback in list(self._listeners):
            try:
                callback(policy)
            except Exception:
                self.log.exception("policy %s: a reload listener failed", self.path)
        return True

    async def check(self) -> bool:
        """One non-blocking look at the file (read in a thread); reload if the content
        changed. Returns whether the policy changed."""
        try:
            data = await asyncio.to_thread(self._read)
        except PolicyError as exc:
            if self._seen_hash != "unreadable":
                self._reject(exc, None)
                self._seen_hash = "unreadable"
            return False
        if hashlib.sha256(data).hexdigest() == self._seen_hash:
            return False
        before = self.version
        self._apply(data)
        return self.version != before

    async def watch(self, interval: float = 2.0) -> None:
        """Poll the file every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the watcher die
                self.log.exception("policy %s: watch failed", self.path)

    def start(self, interval: float = 2.0) -> asyncio.Task[None]:
        """Start :meth:`watch` as a task on the running loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.watch(interval))
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
