"""An admin's reason for a stop or cancel: checked (required, bounded, one line), stored with
who and when, and read back only for the user it concerns (the hub's home page)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from gpulab.hub.culler.admin_actions import REASON_MAX, AdminAction, check_reason
from gpulab.hub.culler.service.store import StateStore
from gpulab.hub.culler.user_notices import UserNotices, culler_db_url
from gpulab.hub.usage.models import make_engine


@pytest.mark.parametrize("value", [None, "", "   ", 7, "x" * (REASON_MAX + 1), "ab", "a\x00bcd"])
def test_a_bad_reason_names_the_field(value):
    reason, problems = check_reason(value)
    assert reason is None and problems[0].field == "reason"


def test_a_reason_is_trimmed_to_one_line():
    assert check_reason("  GPU idle\n since   Monday ") == ("GPU idle since Monday", [])


def test_actions_are_stored_and_read_back_for_their_user_only(tmp_path):
    url = f"sqlite:///{tmp_path / 'usage.sqlite'}"
    store = StateStore(make_engine(url))
    now = datetime.now(UTC)

    async def go() -> list[AdminAction]:
        await store.open()
        await store.record_action(AdminAction("bob", "server-stop", "", "idle GPUs", "admin", now))
        await store.record_action(
            AdminAction("carol", "job-cancel", "j-1", "wrong data", "admin", now)
        )
        return await store.actions_for("bob", now - timedelta(days=1))

    stored = asyncio.run(go())
    assert [(a.user, a.reason, a.by) for a in stored] == [("bob", "idle GPUs", "admin")]
    notices = UserNotices(url).for_user("bob")
    assert [n["message"] for n in notices] == ["admin stopped your default server: idle GPUs"]
    assert UserNotices(url).for_user("dave") == []


def test_notices_from_a_missing_database_are_none_and_create_nothing(tmp_path):
    path = tmp_path / "absent.sqlite"
    assert UserNotices(f"sqlite:///{path}").for_user("bob") == []
    assert not path.exists()


def test_notices_read_the_database_the_culler_is_given():
    services = [
        {"name": "jobs-gateway", "command": ["python", "--GatewayApp.db_url=nope"]},
        {"name": "culler", "command": ["python", "-m", "x", "--CullerApp.db_url=sqlite:///u.db"]},
    ]
    assert culler_db_url(services) == "sqlite:///u.db"
