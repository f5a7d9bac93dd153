"""A culler restart never culls the wrong server: keeps, warnings and their deadlines come back
from the database, and a fresh culler waits one report interval before calling a server that
was already running idle. A restart is a new ``Culler`` (and store) on the same database, with
the service's clock set by the test and a stand-in hub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from gpulab.hub.culler.service.cycle import Culler
from gpulab.hub.culler.service.store import StateStore
from gpulab.hub.policy import load_policy
from gpulab.hub.usage.models import make_engine

from gpulab.wire.activity import ActivityReport

POLICY_TEXT = (Path(__file__).resolve().parent / "policy.yaml").read_text()
# A group culled without a warning: a wrong judgement at start is a cull at once.
NOWARN = """groups:
  nowarn:
    images: {projects: [shared]}
    profiles: [cpu]
    idle:
      timeout: 4s
      warn_before: 0s
"""


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class StandInHub:
    """alice, in ``group``, with one ready server started ten minutes before the clock."""

    requests = 0

    def __init__(self, clock: Clock, group: str) -> None:
        self.group = group
        self.started = clock.now - timedelta(minutes=10)
        self.running = True
        self.stops: list[tuple[str, str]] = []

    def model(self) -> dict[str, Any]:
        servers = {}
        if self.running:
            servers[""] = {"ready": True, "started": self.started.isoformat()}
        return {"name": "alice", "groups": [self.group], "servers": servers}

    def remember_user(self, model: dict[str, Any]) -> None:
        pass

    async def active_user_pages(self) -> AsyncIterator[list[dict[str, Any]]]:
        yield [self.model()]

    async def stop_server(self, user: str, server_name: str = "") -> int:
        self.stops.append((user, server_name))
        self.running = False
        return 204


@pytest.fixture
def policy(tmp_path: Path) -> Any:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY_TEXT.replace("groups:\n", NOWARN, 1))
    return load_policy(path)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'usage.sqlite'}"


async def start_culler(
    hub: StandInHub, policy: Any, db_url: str, clock: Clock, report_interval: float = 60.0
) -> Culler:
    """What ``CullerApp.serve`` does at start: open the store, restore, then cycle."""
    store = StateStore(make_engine(db_url))
    await store.open()
    culler = Culler(
        hub,  # type: ignore[arg-type]
        lambda: policy,
        now=clock,
        store=store,
        report_interval=report_interval,
    )
    await culler.restore()
    return culler


async def scene(
    group: str, policy: Any, db_url: str, report_interval: float = 60.0
) -> tuple[Clock, StandInHub, Culler]:
    """A clock, alice's server in ``group`` and a first culler."""
    clock = Clock()
    hub = StandInHub(clock, group)
    return clock, hub, await start_culler(hub, policy, db_url, clock, report_interval)


def busy_report(at: datetime) -> ActivityReport:
    return ActivityReport.from_json(
        {
            "sampled_at": at.isoformat(),
            "last_kernel_activity": at.isoformat(),
            "kernels_busy": True,
            "last_terminal_activity": None,
            "kernels": [],
            "terminals": 0,
            "gpus": [],
            "probe": "fake",
        }
    )


async def decision(culler: Culler) -> Any:
    await culler.run_cycle()
    view = culler.servers.get(("alice", ""))
    return None if view is None else view.decision


async def test_a_kept_server_is_not_culled_after_a_restart_before_its_keep_ends(
    policy: Any, db_url: str
) -> None:
    clock, hub, first = await scene("fast", policy, db_url, 0)  # idle after 4 s, keeps of 3 s each
    assert (await decision(first)).action == "warn"
    ok, _ = await first.keep("alice", "", ["fast"])
    assert ok
    kept_until = first.book.state("alice").kept_until
    assert kept_until is not None

    clock.advance(1)
    # No grace period here: the keep itself must have survived.
    second = await start_culler(hub, policy, db_url, clock, report_interval=0)
    d = await decision(second)
    assert d.action == "keep" and d.state == "kept", d
    assert second.book.state("alice").kept_until == kept_until
    assert second.book.state("alice").keeps_used == 1
    assert hub.stops == []

    clock.now = kept_until + timedelta(seconds=10)
    d = await decision(second)  # once the keep ended, the rules apply again
    assert d.action == "warn" and d.state == "warned", d


async def test_a_busy_server_is_not_culled_by_a_fresh_culler_before_its_first_report(
    policy: Any, db_url: str
) -> None:
    clock, hub, first = await scene("nowarn", policy, db_url)
    first.record_report("alice", "", busy_report(clock.now), ["nowarn"])
    assert (await decision(first)).action == "keep"

    clock.advance(30)  # the kernel keeps executing; the culler restarts
    second = await start_culler(hub, policy, db_url, clock)
    d = await decision(second)
    assert d.action == "keep", d
    assert hub.stops == []

    clock.advance(20)  # the next report arrives within the interval: still busy
    second.record_report("alice", "", busy_report(clock.now), ["nowarn"])
    clock.advance(50)  # past the grace period, judged on the report
    assert (await decision(second)).action == "keep"
    assert hub.stops == []


async def test_a_silent_server_is_judged_once_the_grace_period_is_over(
    policy: Any, db_url: str
) -> None:
    clock, hub, culler = await scene("nowarn", policy, db_url)
    await culler.run_cycle()
    assert hub.stops == []
    clock.advance(61)
    await culler.run_cycle()
    assert hub.stops == [("alice", "")]


@pytest.mark.parametrize("report_interval", [0.0, 60.0])
async def test_a_warning_in_force_before_a_restart_keeps_its_deadline(
    policy: Any, db_url: str, report_interval: float
) -> None:
    clock, hub, first = await scene("fast", policy, db_url)  # warned 3 s before the cull
    clock.advance(61)  # past the first culler's own grace period
    warned = await decision(first)
    assert warned.action == "warn" and warned.first_warning
    warned_at = first.book.state("alice").warned_at

    clock.advance(1)
    second = await start_culler(hub, policy, db_url, clock, report_interval=report_interval)
    again = await decision(second)
    assert again.action == "warn", again
    assert again.cull_at == warned.cull_at
    assert not again.first_warning
    assert second.book.state("alice").warned_at == warned_at
    assert hub.stops == []

    clock.now = warned.cull_at + timedelta(seconds=1)
    await second.run_cycle()  # the deadline passed: culled as the warning said
    assert hub.stops == [("alice", "")]


async def test_a_new_run_of_the_server_starts_afresh(policy: Any, db_url: str) -> None:
    clock, hub, first = await scene("fast", policy, db_url, 0)
    await first.run_cycle()
    assert (await first.keep("alice", "", ["fast"]))[0]

    hub.started = clock.now  # stopped and started again while no culler ran
    clock.advance(1)
    second = await start_culler(hub, policy, db_url, clock, report_interval=0)
    await second.run_cycle()
    st = second.book.state("alice")
    assert st.keeps_used == 0 and st.kept_until is None


async def test_a_stopped_server_is_forgotten_in_the_database(policy: Any, db_url: str) -> None:
    clock, hub, first = await scene("fast", policy, db_url, 0)
    await first.run_cycle()
    assert (await first.keep("alice", "", ["fast"]))[0]
    hub.running = False

    second = await start_culler(hub, policy, db_url, clock, report_interval=0)
    assert ("alice", "") in second.book.servers
    await second.run_cycle()
    third = await start_culler(hub, policy, db_url, clock, report_interval=0)
    assert third.book.servers == {}
