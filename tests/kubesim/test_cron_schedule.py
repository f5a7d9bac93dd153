"""Cron schedules as the CronJob controller reads them (pure: no cluster)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from gpulab.wire.cron import CronError, parse_schedule, zone

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_daily_at_two_fires_next_at_two_utc() -> None:
    nxt = parse_schedule("0 2 * * *").next_after(at("2026-03-01T02:00:00"), UTC)
    assert nxt == at("2026-03-02T02:00:00")


def test_timezone_shifts_the_firing_time() -> None:
    nxt = parse_schedule("0 2 * * *").next_after(at("2026-03-01T00:00:00"), zone("Asia/Shanghai"))
    assert nxt == at("2026-03-01T18:00:00")  # 02:00 in Shanghai (UTC+8)


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        ("@hourly", "2026-03-01T11:00:00"),
        ("@daily", "2026-03-02T00:00:00"),
        ("@midnight", "2026-03-02T00:00:00"),
        ("@weekly", "2026-03-08T00:00:00"),  # 2026-03-01 is a Sunday
        ("@monthly", "2026-04-01T00:00:00"),
        ("@yearly", "2027-01-01T00:00:00"),
        ("@annually", "2027-01-01T00:00:00"),
    ],
)
def test_macros_fire_as_their_five_field_forms(macro: str, expected: str) -> None:
    assert parse_schedule(macro).next_after(at("2026-03-01T10:30:00"), UTC) == at(expected)


def test_steps_ranges_lists_and_names() -> None:
    s = parse_schedule("*/15 9-17/4 * jan,MAR mon-fri")
    assert s.minutes == {0, 15, 30, 45}
    assert s.hours == {9, 13, 17}
    assert s.months == {1, 3}
    assert s.weekdays == {1, 2, 3, 4, 5}


def test_seven_is_sunday() -> None:
    assert parse_schedule("0 0 * * 7").weekdays == {0}


def test_restricted_day_of_month_and_weekday_match_either() -> None:
    s = parse_schedule("0 0 13 * fri")  # every 13th and every Friday
    assert s.next_after(at("2026-03-01T00:00:00"), UTC) == at("2026-03-06T00:00:00")  # a Friday
    assert s.next_after(at("2026-03-12T00:00:00"), UTC) == at("2026-03-13T00:00:00")  # the 13th


def test_wall_time_skipped_by_daylight_saving_is_not_a_firing_time() -> None:
    ny = ZoneInfo("America/New_York")  # 2026-03-08 02:00 -> 03:00
    nxt = parse_schedule("30 2 * * *").next_after(at("2026-03-07T12:00:00"), ny)
    assert nxt is not None and nxt.astimezone(ny).day == 9


def test_a_date_that_never_comes_never_fires() -> None:
    assert parse_schedule("0 0 30 2 *").next_after(at("2026-01-01T00:00:00"), UTC) is None


@pytest.mark.parametrize(
    "bad",
    ["", "* * * *", "61 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "5-1 * * * *",
     "*/0 * * * *", "@every 5m", "x * * * *", "TZ=UTC 0 2 * * *", "CRON_TZ=UTC 0 2 * * *"],
)  # fmt: skip
def test_bad_schedules_are_refused(bad: str) -> None:
    with pytest.raises(CronError):
        parse_schedule(bad)


@pytest.mark.parametrize("bad", ["Local", "Mars/Olympus", "", " UTC", "../etc/passwd"])
def test_unknown_time_zones_are_refused(bad: str) -> None:
    with pytest.raises(CronError):
        zone(bad)
