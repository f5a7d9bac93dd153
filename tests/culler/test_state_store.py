"""The culler's state store: what it saves comes back as it was, a stopped server's row goes,
and without a usable database it answers in memory and says so once."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from gpulab.hub.culler.service.store import StateStore
from gpulab.hub.culler.state import SavedState, ServerBook
from gpulab.hub.usage.models import make_engine
from sqlalchemy import create_engine, inspect

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
SAVED = SavedState(
    "alice",
    "gpu",
    started_at=T0,
    keeps_used=1,
    keep_seconds_used=1800.0,
    kept_until=T0 + timedelta(hours=1),
    warned_at=T0 + timedelta(minutes=5),
    warned_cull_at=T0 + timedelta(minutes=15),
    warned_cause="idle",
)


@pytest.fixture
def engine(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'usage.sqlite'}")
    yield engine
    engine.dispose()


async def test_open_creates_its_own_table(engine) -> None:
    await StateStore(engine).open()
    assert "gpulab_culler_state" in inspect(engine).get_table_names()


async def test_saved_state_comes_back_as_it_was(engine) -> None:
    store = StateStore(engine)
    await store.open()
    await store.save(SAVED)
    assert await StateStore(engine).load() == [SAVED]


async def test_a_later_save_replaces_the_row(engine) -> None:
    store = StateStore(engine)
    await store.open()
    await store.save(SAVED)
    cleared = SavedState("alice", "gpu", started_at=T0, keeps_used=2, keep_seconds_used=3600.0)
    await store.save(cleared)
    assert await store.load() == [cleared]


async def test_forget_removes_one_server(engine) -> None:
    store = StateStore(engine)
    await store.open()
    other = SavedState("bob", "", started_at=T0)
    await store.save(SAVED)
    await store.save(other)
    await store.forget("alice", "gpu")
    assert await store.load() == [other]


async def test_the_book_restores_what_was_saved() -> None:
    book = ServerBook()
    book.restore(SAVED)
    assert book.state("alice", "gpu").saved() == SAVED


async def test_without_a_database_it_keeps_nothing_and_logs_once(caplog) -> None:
    caplog.set_level(logging.ERROR, "gpulab.culler")
    store = StateStore(create_engine("sqlite://"), "usage.sqlite: DatabaseError: corrupt")
    await store.open()
    await store.save(SAVED)
    assert await store.load() == []
    assert not store.persistent
    assert len([r for r in caplog.records if "in memory only" in r.message]) == 1


async def test_a_failing_database_is_logged_once_and_never_raises(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.ERROR, "gpulab.culler")
    engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'usage.sqlite'}")
    store = StateStore(engine)
    await store.open()
    await store.save(SAVED)
    await store.forget("alice", "gpu")
    assert await store.load() == []
    assert len([r for r in caplog.records if "in memory only" in r.message]) == 1
