"""``POST /activity`` with bodies a user can forge from their own server: every one that is not
an acceptable report is a 400 naming the field, never a 5xx, and none breaks a later cull cycle;
a report dated in the future neither is stored as such nor hides the next true report.

The handler runs in a real tornado server on a thread, with the caller's identity fixed to a
server token (the hub's token check is the subject of test_service.py) and a stand-in hub."""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from gpulab.hub.culler.service.cycle import Culler
from gpulab.hub.culler.service.handlers import ActivityHandler
from gpulab.hub.policy import load_policy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tornado import httpserver, netutil, web

from gpulab.wire.activity import MAX_CLOCK_SKEW, ActivityReport, ReportError

POLICY = load_policy(Path(__file__).resolve().parent / "policy.yaml")
USER = "alice"
GPU_GROUP = "fast"  # GPU idle culling after 3 s, warnings 3 s ahead


class Clock:
    """The service's clock, set by the test."""

    def __init__(self) -> None:
        self.now = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class StandInHub:
    """The hub as the culler sees it: alice, in the GPU group, with one ready server."""

    requests = 0

    def __init__(self, clock: Clock) -> None:
        self.started = clock.now - timedelta(minutes=10)

    def model(self) -> dict[str, Any]:
        server = {"ready": True, "started": self.started.isoformat(), "last_activity": None}
        return {"name": USER, "groups": [GPU_GROUP], "servers": {"": server}}

    async def user(self, name: str, fresh: bool = False) -> dict[str, Any] | None:
        return self.model() if name == USER else None

    def remember_user(self, model: dict[str, Any]) -> None:
        pass

    async def active_user_pages(self) -> AsyncIterator[list[dict[str, Any]]]:
        yield [self.model()]

    async def stop_server(self, user: str, server_name: str = "") -> int:
        raise AssertionError("a dry run stops nothing")


class ServerTokenActivity(ActivityHandler):
    """The real handler, called with alice's default server's own token."""

    def get_current_user(self) -> dict[str, Any]:
        return {"kind": "user", "name": USER, "scopes": [f"access:servers!server={USER}/"]}


class Service:
    """The activity handler served on a loopback port from a thread of its own."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.culler = Culler(StandInHub(self.clock), lambda: POLICY, dry_run=True, now=self.clock)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        sockets = netutil.bind_sockets(0, "127.0.0.1")
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/activity"
        app = web.Application([(r"/activity", ServerTokenActivity)], culler=self.culler)

        async def serve() -> httpserver.HTTPServer:
            server = httpserver.HTTPServer(app)
            server.add_sockets(sockets)
            return server

        self.server = self.call(serve())
        self.http = httpx.Client(timeout=10)

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def post(self, body: Any) -> tuple[int, Any]:
        raw = body if isinstance(body, bytes) else json.dumps(body, allow_nan=True).encode()
        r = self.http.post(self.url, content=raw, headers={"Content-Type": "application/json"})
        return r.status_code, r.json()

    def cycle(self) -> Any:
        return self.call(self.culler.run_cycle())

    def close(self) -> None:
        self.http.close()

        async def stop() -> None:
            self.server.stop()

        self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    s = Service()
    try:
        yield s
    finally:
        s.close()


def report(at: datetime, gpu_pct: float = 2.0, **extra: Any) -> dict[str, Any]:
    return {
        "sampled_at": at.isoformat(),
        "last_kernel_activity": None,
        "kernels_busy": False,
        "last_terminal_activity": None,
        "kernels": [
            {
                "id": "k1",
                "name": "python3",
                "execution_state": "idle",
                "last_activity": None,
                "pid": 42,
                "pids": [42, 43],
                "gpu_memory_bytes": 1 << 30,
                "gpu_devices_open": True,
            }
        ],
        "terminals": 0,
        "gpus": [
            {
                "index": 0,
                "uuid": "GPU-0",
                "utilization_pct": gpu_pct,
                "memory_used_bytes": 1 << 30,
                "memory_total_bytes": 80 << 30,
                "processes": [{"pid": 42, "used_memory_bytes": 1 << 30}],
            }
        ],
        "probe": "fake",
        **extra,
    }


# ------------------------------------------------------------------------- named refusals


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sampled_at": None}, "sampled_at"),
        ({"sampled_at": "yesterday"}, "sampled_at"),
        ({"sampled_at": 1714824000}, "sampled_at"),
        ({"sampled_at": "0001-01-01T00:00:00+01:00"}, "sampled_at"),  # UTC would be year 0
        ({"last_kernel_activity": ["2026-05-04T12:00:00+00:00"]}, "last_kernel_activity"),
        ({"kernels_busy": "yes"}, "kernels_busy"),
        ({"terminals": math.inf}, "terminals"),
        ({"terminals": -1}, "terminals"),
        ({"terminals": 10**30}, "terminals"),
        ({"kernels": {"id": "k1"}}, "kernels"),
        ({"kernels": [{"id": "k"}] * 2000}, "kernels"),
        ({"kernels": ["k1"]}, "kernels[0]"),
        ({"kernels": [{"name": "python3"}]}, "kernels[0].id"),
        ({"kernels": [{"id": "k", "pid": "42"}]}, "kernels[0].pid"),
        ({"kernels": [{"id": "k", "pids": [1, math.nan]}]}, "kernels[0].pids[1]"),
        ({"kernels": [{"id": "k", "last_activity": "2026-13-01"}]}, "kernels[0].last_activity"),
        ({"gpus": [{"index": 0}]}, "gpus[0].uuid"),
        ({"probe": "x" * 10_000}, "probe"),
    ],
)
def test_a_malformed_report_is_a_400_naming_the_field(service: Service, change, field) -> None:
    body = {**report(service.clock.now), **change}
    code, answer = service.post(body)
    assert code == 400, answer
    assert answer["field"] == field and answer["error"].startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (math.inf, "gpus[0].utilization_pct"),
        (math.nan, "gpus[0].utilization_pct"),
        (10**400, "gpus[0].utilization_pct"),  # no float holds it
    ],
)
def test_infinity_nan_and_huge_numbers_are_refused(
    service: Service, value: float, field: str
) -> None:
    body = report(service.clock.now, gpu_pct=value)
    code, answer = service.post(body)
    assert code == 400 and answer["field"] == field
    assert "a number from 0 to 100" in answer["error"]


def test_a_body_that_is_no_object_is_a_400(service: Service) -> None:
    for raw in (b"[]", b"null", b'"report"', b"{", b"Infinity"):
        code, _ = service.post(raw)
        assert code == 400, raw


# ------------------------------------------------------------------------- dates ahead


def test_a_report_from_the_future_is_refused_and_the_next_true_one_counts(
    service: Service,
) -> None:
    service.clock.now += timedelta(hours=1)
    now = service.clock.now
    assert service.post(report(now - timedelta(seconds=5), gpu_pct=90.0))[0] == 200
    # Dated a year ahead: refused, naming the field; nothing of it is kept.
    code, answer = service.post(report(now + timedelta(days=365), gpu_pct=1.0))
    assert code == 400 and answer["field"] == "sampled_at"
    assert "check the server's clock" in answer["error"]
    kept = service.culler.reports[(USER, "")]
    assert kept.sampled_at == now - timedelta(seconds=5)
    # The next true report (the GPU went idle) is taken, and the cycle judges with it.
    service.clock.now += timedelta(seconds=10)
    assert service.post(report(service.clock.now, gpu_pct=1.0))[0] == 200
    assert service.culler.reports[(USER, "")].sampled_at == service.clock.now
    assert service.cycle().errors == 0
    view = service.culler.servers[(USER, "")]
    assert view.decision is not None and "GPU idle" in view.decision.reason


def test_a_date_slightly_ahead_counts_as_now_and_the_next_true_one_counts(
    service: Service,
) -> None:
    service.clock.now += timedelta(hours=1)
    now = service.clock.now
    ahead = now + MAX_CLOCK_SKEW - timedelta(seconds=1)  # a fast clock, within the skew
    kernel_ahead = report(ahead, gpu_pct=95.0)
    kernel_ahead["kernels"][0]["last_activity"] = ahead.isoformat()
    assert service.post(kernel_ahead)[0] == 200
    kept = service.culler.reports[(USER, "")]
    assert kept.sampled_at == now and kept.kernels[0].last_activity == now  # taken as "now"
    # A true report a second later is newer, so it replaces the fast one.
    service.clock.now += timedelta(seconds=1)
    assert service.post(report(service.clock.now, gpu_pct=3.0))[0] == 200
    assert service.culler.reports[(USER, "")].sampled_at == service.clock.now
    tracker = service.culler.book.state(USER, "").gpu
    assert tracker is not None and tracker.idle_since == service.clock.now


def test_received_refuses_each_date_beyond_the_skew_by_name() -> None:
    now = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    far = (now + timedelta(days=1)).isoformat()
    base = report(now)
    for field, body in [
        ("last_kernel_activity", {**base, "last_kernel_activity": far}),
        ("last_terminal_activity", {**base, "last_terminal_activity": far}),
        ("kernels[0].last_activity", {**base, "kernels": [{"id": "k", "last_activity": far}]}),
    ]:
        with pytest.raises(ReportError) as info:
            ActivityReport.from_json(body).received(now)
        assert info.value.field == field


def test_a_true_report_round_trips_unchanged() -> None:
    now = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    body = report(now, last_kernel_activity=(now - timedelta(minutes=1)).isoformat())
    parsed = ActivityReport.from_json(body)
    assert parsed.received(now) == parsed
    assert ActivityReport.from_json(parsed.to_json()) == parsed
    # No offset means UTC (the extension always sends one; older ones may not).
    naive = ActivityReport.from_json({**body, "sampled_at": "2026-05-04T12:00:00"})
    assert naive.sampled_at == now


# ------------------------------------------------------------------------- any body at all

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(
        [
            "2026-05-04T12:00:00+00:00",
            "9999-12-31T23:59:59+00:00",
            "9999-12-31T23:59:59-14:00",
            "0001-01-01T00:00:00+14:00",
            "1969-12-31T23:59:59Z",
            "2026-05-04",
            "",
        ]
    ),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def forged_reports(draw: st.DrawFn) -> Any:
    """A true report with one to four values, at any depth, replaced by anything JSON holds."""
    body = report(datetime(2026, 5, 4, 12, 0, tzinfo=UTC))
    kernel, gpu = body["kernels"][0], body["gpus"][0]
    objects = [body, kernel, gpu, gpu["processes"][0]]
    spots = [(obj, key) for obj in objects for key in [*obj, "extra"]]
    for obj, key in draw(st.lists(st.sampled_from(spots), min_size=1, max_size=4)):
        obj[key] = draw(json_values)
    return body


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(body=st.one_of(forged_reports(), json_values))
def test_no_body_gets_a_5xx_or_breaks_the_cycle(service: Service, body: Any) -> None:
    code, answer = service.post(body)
    assert code in (200, 400, 403), (code, answer)
    if code == 400 and isinstance(body, dict):
        assert answer["error"] and "field" in answer
    assert service.cycle().errors == 0
