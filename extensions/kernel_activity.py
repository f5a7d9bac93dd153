"""When each kernel last did work for its user, as the culler should count it.

jupyter_server's own ``last_activity`` moves on every IOPub message a kernel sends, widget
traffic included: a widget updated from a background thread (the jobs panel's auto-refresh,
a progress bar a finished cell left running) is kernel output, so an open panel kept its server
from ever being idle, with no browser attached. gpulab counts what a person's work produces
instead, from its own subscription to each kernel's IOPub channel:

* counted: code run (``execute_input``, the busy/idle around an ``execute_request``), its output
  (``stream``, ``display_data``, ``execute_result``, ``error``, ...), whoever asked for it, a
  widget callback that prints included;
* not counted: widget state messages (``comm_open``, ``comm_msg``, ``comm_close``) whichever
  side sent them, and the kernel's busy/idle around a widget message or a housekeeping request
  (``kernel_info_request``, ``comm_info_request``, ...).

A person moving a slider is browser activity, which the culler never counts either
(docs/culling.md); the output the slider's callback prints is counted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["KernelOutputMonitor", "counts_as_activity"]

WIDGET_TRAFFIC = frozenset({"comm_open", "comm_msg", "comm_close"})
# Requests a front end or the server sends without anyone's code running.
HOUSEKEEPING = frozenset(
    {
        "comm_info_request",
        "kernel_info_request",
        "shutdown_request",
        "interrupt_request",
        "debug_request",
        "usage_request",
        "complete_request",
        "inspect_request",
        "is_complete_request",
        "history_request",
    }
)


def counts_as_activity(msg_type: str, parent_msg_type: str | None) -> bool:
    """Whether an IOPub message of ``msg_type``, answering a request of ``parent_msg_type``
    (None: no request, e.g. a background thread), is work done for the kernel's user."""
    if msg_type in WIDGET_TRAFFIC:
        return False
    if msg_type == "status" and parent_msg_type in WIDGET_TRAFFIC | HOUSEKEEPING:
        return False
    return True


class KernelOutputMonitor:
    """Subscribes to each kernel's IOPub (on the server's event loop) and keeps, per kernel and
    for the whole server, the time of the last message :func:`counts_as_activity`."""

    def __init__(self) -> None:
        self._streams: dict[str, Any] = {}
        self._last: dict[str, datetime] = {}
        self.latest: datetime | None = None  # any kernel's, shut-down ones included

    def last(self, kernel_id: str) -> datetime | None:
        return self._last.get(kernel_id)

    def watch(self, kernel_id: str, kernel: Any, since: datetime | None) -> None:
        """Start watching ``kernel`` (a jupyter_server kernel manager) unless already done;
        ``since``: its activity up to now (jupyter_server's ``last_activity``, which until
        the first report also covers how it started)."""
        if kernel_id in self._streams:
            return
        from jupyter_client.session import Session

        try:
            stream = kernel.connect_iopub()
        except Exception:  # noqa: BLE001 - not a local kernel: jupyter_server's value stands
            return
        session = Session(config=kernel.session.config, key=kernel.session.key)

        def record(parts: list[bytes]) -> None:
            _idents, fed = session.feed_identities(parts)
            msg = session.deserialize(fed, content=False)
            parent = msg.get("parent_header") or {}
            if counts_as_activity(msg["header"]["msg_type"], parent.get("msg_type")):
                self._stamp(kernel_id, datetime.now(UTC))

        stream.on_recv(record)
        self._streams[kernel_id] = stream
        if since is not None:
            self._stamp(kernel_id, since)

    def _stamp(self, kernel_id: str, at: datetime) -> None:
        if self._last.get(kernel_id) is None or at > self._last[kernel_id]:
            self._last[kernel_id] = at
        if self.latest is None or at > self.latest:
            self.latest = at

    def keep_only(self, kernel_ids: set[str]) -> None:
        """Stop watching kernels that are gone (their last activity stays in ``latest``)."""
        for kernel_id in set(self._streams) - kernel_ids:
            stream = self._streams.pop(kernel_id)
            self._last.pop(kernel_id, None)
            stream.close()

    def close(self) -> None:
        self.keep_only(set())
