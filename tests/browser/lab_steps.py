"""What the JupyterLab extension's browser tests share: starting a user's CPU server through
the hub API, writing a notebook through the contents API, checking controls are labelled and
reachable by keyboard, and collecting browser console errors."""

from __future__ import annotations

import json
import time
from typing import Any

CPU_IMAGE = "harbor.local/shared/scipy:2024.10"  # allowed to every group (project shared)
LAB_TIMEOUT = 60_000  # ms: Lab's first page load on a busy machine
READY_TIMEOUT = 120.0  # s: a server takes ~10-40 s to start on a 2-core machine

# PUT a notebook through the Jupyter contents API with the page's XSRF cookie.
PUT_NOTEBOOK = """
async ([url, notebook]) => {
  const cookie = document.cookie.split('; ').find((c) => c.startsWith('_xsrf='));
  const xsrf = cookie ? decodeURIComponent(cookie.slice('_xsrf='.length)) : '';
  const r = await fetch(url, {
    method: 'PUT', credentials: 'same-origin',
    headers: {'Content-Type': 'application/json', 'X-XSRFToken': xsrf},
    body: JSON.stringify({type: 'notebook', format: 'json', content: notebook}),
  });
  return [r.status, await r.text()];
}
"""

# GET a JSON answer of this server (the single-user server wants the XSRF token on reads too).
GET_JSON = """
async (url) => {
  const cookie = document.cookie.split('; ').find((c) => c.startsWith('_xsrf='));
  const xsrf = cookie ? decodeURIComponent(cookie.slice('_xsrf='.length)) : '';
  const r = await fetch(url, {credentials: 'same-origin', headers: {'X-XSRFToken': xsrf}});
  return [r.status, await r.text()];
}
"""

# Every interactive control under a root: those without an accessible name, and those a
# keyboard cannot reach (negative tabindex, or a clickable non-control without tabindex).
UNLABELLED_OR_UNREACHABLE = """
(root) => {
  const named = (el) => {
    if ((el.getAttribute('aria-label') || '').trim()) return true;
    if (el.id && document.querySelector(`label[for="${el.id}"]`)) return true;
    if (el.closest('label')) return true;
    if (['BUTTON', 'A', 'SUMMARY', 'TR'].includes(el.tagName) && el.textContent.trim()) return true;
    return false;
  };
  const bad = [];
  const controls = root.querySelectorAll(
    'button, input, select, textarea, a[href], summary, [role="button"], tr[tabindex]');
  for (const el of controls) {
    if (el.offsetParent === null) continue;  // not shown
    const where = el.outerHTML.slice(0, 120);
    if (!named(el)) bad.push('unlabelled: ' + where);
    if (el.tabIndex < 0) bad.push('not keyboard-reachable: ' + where);
  }
  return bad;
}
"""


def notebook(cells: list[tuple[str, list[str]]]) -> dict[str, Any]:
    return {
        "cells": [
            {
                "cell_type": "code",
                "metadata": {"tags": tags} if tags else {},
                "source": source,
                "outputs": [],
                "execution_count": None,
            }
            for source, tags in cells
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def wait_for(what: str, check, timeout: float):
    """Poll a state until it holds (the bound only ends a stuck test)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not the case after {timeout:.0f}s")
        time.sleep(0.5)


def start_cpu_server(platform: Any, name: str) -> None:
    platform.api("POST", f"/hub/api/users/{name}/server", {"profile": "cpu", "image": CPU_IMAGE})
    wait_for(
        f"{name}'s server ready",
        lambda: (platform.api("GET", f"/hub/api/users/{name}")["servers"].get("") or {}).get(
            "ready"
        ),
        READY_TIMEOUT,
    )


def put_notebook(page: Any, name: str, path: str, content: dict[str, Any]) -> None:
    status, body = page.evaluate(PUT_NOTEBOOK, [f"/user/{name}/api/contents/{path}", content])
    assert status in (200, 201), body


def open_lab_notebook(
    platform: Any, context: Any, login: Any, name: str, path: str, content: dict[str, Any]
) -> Any:
    """``name``'s Lab (their server running) with the notebook ``path`` (``content``, two
    cells) saved and open; the page."""
    from playwright.sync_api import expect

    user_url = platform.user_url(name).rstrip("/")
    page = login(context, name)
    page.goto(f"{user_url}/lab")
    expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=LAB_TIMEOUT)
    put_notebook(page, name, path, content)
    # ?reset: not the workspace an earlier test of this user left (its open notebook would be
    # restored in place of this one).
    page.goto(f"{user_url}/lab/tree/{path}?reset")
    expect(page.locator(".jp-NotebookPanel .jp-Cell")).to_have_count(2, timeout=LAB_TIMEOUT)
    return page


def get_json(page: Any, url: str) -> Any:
    status, body = page.evaluate(GET_JSON, url)
    assert status == 200, body
    return json.loads(body)


class ConsoleErrors:
    """Console errors and uncaught exceptions of every page of a context. ``expect(status)``:
    Chromium logs every non-2xx answer as an error; a test that provokes one on purpose (a
    refused submit) says so, and only that many such lines are forgiven."""

    def __init__(self, context: Any) -> None:
        self._seen: list[str] = []
        self._expected: list[str] = []
        context.on("page", self._watch)

    def _watch(self, page: Any) -> None:
        page.on("console", lambda m: self._seen.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self._seen.append(f"uncaught: {e}"))

    def expect(self, status: int) -> None:
        self._expected.append(f"the server responded with a status of {status}")

    @property
    def errors(self) -> list[str]:
        expected = list(self._expected)
        left = []
        for line in self._seen:
            match = next((e for e in expected if e in line), None)
            if match is None:
                left.append(line)
            else:
                expected.remove(match)
        return left


def open_run_dialog(page: Any, timeout: float = 60_000) -> Any:
    """Press **Run as job** on the notebook's toolbar, answer "Save and run" if Lab holds
    unsaved edits, and return the dialog's form."""
    from playwright.sync_api import expect

    page.get_by_role("button", name="Run as job").click()
    expect(page.locator(".jp-Dialog")).to_be_visible()
    save = page.get_by_role("button", name="Save and run")
    if save.is_visible():
        save.click()
    form = page.locator(".gpulab-RunForm")
    expect(form).to_be_visible(timeout=timeout)
    return form


def submit_and_find_row(page: Any, form: Any, name: str, timeout: float = 60_000) -> Any:
    """Name the job, submit it, and return its row in the GPU jobs sidebar (the sidebar opens
    on the job by itself)."""
    from playwright.sync_api import expect

    form.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("button", name="Submit job").click()
    row = page.locator("#gpulab-jobs-sidebar tr.gpulab-JobsTable-row", has_text=name).first
    expect(row).to_be_visible(timeout=timeout)
    return row
