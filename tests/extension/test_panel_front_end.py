"""The panel refreshes only while a front end shows it: the kernel asks its server how many
front ends are connected to it (a real ``jupyter server`` and kernel), and the refresh loop
makes no call and no widget update while the answer is none."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from gpulab.extensions.front_end import front_end_attached
from gpulab.extensions.panel import JobsPanel
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from tests.extension.jupyter_testlib import JupyterServer, bare_server, until


class _NoCuller:
    configured = False

    def status(self) -> None:
        return None


class _Counter:
    def __init__(self, answer: bool | None) -> None:
        self.answer = answer
        self.calls = 0

    def __call__(self) -> bool | None:
        self.calls += 1
        return self.answer


class _Client:
    """A gateway client that counts the panel's refreshes."""

    def __init__(self, refreshes: list[float]) -> None:
        self.refreshes = refreshes

    def __enter__(self) -> _Client:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def list(self, limit: int | None = None) -> list[dict]:
        self.refreshes.append(time.monotonic())
        return []


def _panel(tmp_path: Path, front_end: Callable[[], bool | None], refreshes: list[float]):
    return JobsPanel(
        client_factory=lambda: _Client(refreshes),
        culler=_NoCuller(),  # type: ignore[arg-type]
        env={"HOME": str(tmp_path)},
        auto_refresh=0.01,
        front_end=front_end,
    )


def test_no_refresh_while_no_front_end_shows_the_panel(tmp_path: Path) -> None:
    refreshes: list[float] = []
    front_end = _Counter(False)
    panel = _panel(tmp_path, front_end, refreshes)
    panel.start_auto_refresh()
    until(lambda: front_end.calls >= 5, "the refresh loop asking for a front end")
    panel.close()
    assert refreshes == []


def test_refreshes_while_a_front_end_shows_the_panel(tmp_path: Path) -> None:
    refreshes: list[float] = []
    panel = _panel(tmp_path, _Counter(True), refreshes)
    panel.start_auto_refresh()
    until(lambda: len(refreshes) >= 2, "two refreshes")
    panel.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("front-end") / "home"
    root.mkdir()
    with bare_server(root) as s:
        yield s


async def test_the_server_tells_whether_a_front_end_is_connected(server: JupyterServer) -> None:
    with server.client() as c:
        r = c.post("/api/kernels", json={"name": "python3"})
        assert r.status_code == 201, r.text
        kernel_id = r.json()["id"]
    env = {"JUPYTERHUB_SERVICE_URL": server.url + "/", "JUPYTERHUB_API_TOKEN": server.token}
    try:
        assert front_end_attached(env, kernel_id) is False
        ws = await websocket_connect(
            HTTPRequest(
                server.url.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels",
                headers=server.auth,
            )
        )
        until(lambda: front_end_attached(env, kernel_id), "the front end counted")
        ws.close()
        until(lambda: front_end_attached(env, kernel_id) is False, "the front end gone")
    finally:
        with server.client() as c:
            c.delete(f"/api/kernels/{kernel_id}")
    assert front_end_attached({}, kernel_id) is None  # not in a server: cannot tell
    assert front_end_attached(env, "00000000-dead-beef") is None  # no such kernel (404)
