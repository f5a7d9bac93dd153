"""The dashboard's data is a snapshot: the first request waits for it, later ones get the last
one at once while the next is built, and an admin's action asks for a new one."""

from __future__ import annotations

import asyncio

from gpulab.hub.culler.service.snapshot import OverviewSnapshot


class Builds:
    """A build that finishes when the test lets it (no timing involved)."""

    def __init__(self) -> None:
        self.count = 0
        self.release = asyncio.Event()

    async def __call__(self) -> dict:
        self.count += 1
        await self.release.wait()
        self.release.clear()
        return {"build": self.count}


async def settle(snapshot: OverviewSnapshot) -> None:
    task = snapshot._next
    if task is not None:
        await task


def test_a_stale_snapshot_is_served_while_the_next_is_built():
    async def go() -> None:
        builds = Builds()
        snapshot = OverviewSnapshot(builds, max_age=0.0)  # always stale
        first = asyncio.create_task(snapshot.get())
        await asyncio.sleep(0)
        builds.release.set()
        assert (await first).data == {"build": 1}
        # Stale: answered at once with the last snapshot; a build has started.
        assert (await snapshot.get()).data == {"build": 1}
        await asyncio.sleep(0)  # let the build task start (a yield, not a wait)
        assert builds.count == 2
        builds.release.set()
        await settle(snapshot)
        assert (await snapshot.get()).data == {"build": 2}

    asyncio.run(go())


def test_an_action_asks_for_a_new_snapshot():
    async def go() -> None:
        builds = Builds()
        snapshot = OverviewSnapshot(builds, max_age=3600.0)
        builds.release.set()
        await snapshot.get()
        assert builds.count == 1
        assert (await snapshot.get()).data == {"build": 1}  # fresh: no build
        assert builds.count == 1
        snapshot.invalidate()
        builds.release.set()
        await settle(snapshot)
        assert (await snapshot.get()).data == {"build": 2}

    asyncio.run(go())


def test_the_page_is_rendered_once_per_snapshot():
    async def go() -> None:
        async def build() -> dict:
            return {"n": 1}

        snapshot = OverviewSnapshot(build)
        built = await snapshot.get()
        renders = []
        for _ in range(3):
            built.page("d", lambda data: renders.append(data) or "<html>")
        assert len(renders) == 1 and built.json == b'{"n": 1}'

    asyncio.run(go())
