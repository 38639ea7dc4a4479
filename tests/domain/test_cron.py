"""Cron fire times in a time zone across daylight-saving changes, and what a bad
expression or zone says."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerflow.domain.cron import Cron, CronError, zone
from ledgerflow.domain.schedules import ScheduleSpec

PARIS = zone("Europe/Paris")


def fires(expression: str, after: datetime, count: int, tz: str = "Europe/Paris") -> list[str]:
    cron, moment, out = Cron.parse(expression), after, []
    for _ in range(count):
        moment = cron.next_after(moment, zone(tz))
        out.append(moment.strftime("%Y-%m-%d %H:%M UTC"))
    return out


def test_a_fixed_time_in_the_spring_forward_gap_fires_once_when_the_clocks_jump() -> None:
    # 2026-03-29 in Paris: 02:00 CET becomes 03:00 CEST (01:00 UTC); 02:30 does not exist
    assert fires("30 2 * * *", datetime(2026, 3, 27, tzinfo=UTC), 4) == [
        "2026-03-27 01:30 UTC",  # 02:30 CET
        "2026-03-28 01:30 UTC",
        "2026-03-29 01:00 UTC",  # the jump: 03:00 CEST
        "2026-03-30 00:30 UTC",  # 02:30 CEST
    ]


def test_hourly_across_spring_forward_has_no_fire_in_the_missing_hour() -> None:
    assert fires("0 * * * *", datetime(2026, 3, 28, 23, 30, tzinfo=UTC), 4) == [
        "2026-03-29 00:00 UTC",  # 01:00 CET
        "2026-03-29 01:00 UTC",  # 03:00 CEST (02:00 never happened)
        "2026-03-29 02:00 UTC",
        "2026-03-29 03:00 UTC",
    ]


def test_hourly_across_fall_back_fires_every_real_hour_once() -> None:
    # 2026-10-25 in Paris: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:xx happens twice
    assert fires("0 * * * *", datetime(2026, 10, 24, 22, 30, tzinfo=UTC), 5) == [
        "2026-10-24 23:00 UTC",  # 01:00 CEST
        "2026-10-25 00:00 UTC",  # 02:00 CEST
        "2026-10-25 01:00 UTC",  # 02:00 CET
        "2026-10-25 02:00 UTC",  # 03:00 CET
        "2026-10-25 03:00 UTC",
    ]


def test_a_fixed_time_in_the_repeated_hour_fires_once_at_its_first_occurrence() -> None:
    assert fires("30 2 * * *", datetime(2026, 10, 24, tzinfo=UTC), 3) == [
        "2026-10-24 00:30 UTC",  # 02:30 CEST
        "2026-10-25 00:30 UTC",  # 02:30 CEST, not again at 02:30 CET
        "2026-10-26 01:30 UTC",  # 02:30 CET
    ]


def test_fields_ranges_steps_lists_names_and_macros() -> None:
    assert fires("*/20 9-10 * * mon-fri", datetime(2026, 1, 2, 9, 30, tzinfo=UTC), 4,
                 "UTC") == ["2026-01-02 09:40 UTC", "2026-01-02 10:00 UTC",
                            "2026-01-02 10:20 UTC", "2026-01-02 10:40 UTC"]
    assert fires("0 0 29 feb *", datetime(2026, 1, 1, tzinfo=UTC), 1, "UTC") == [
        "2028-02-29 00:00 UTC"]
    assert fires("@weekly", datetime(2026, 1, 1, tzinfo=UTC), 1, "UTC") == [
        "2026-01-04 00:00 UTC"]  # a Sunday
    assert fires("0 12 1 * 7", datetime(2026, 2, 2, tzinfo=UTC), 2, "UTC") == [
        "2026-02-08 12:00 UTC", "2026-02-15 12:00 UTC"]  # day 1 or a Sunday


@pytest.mark.parametrize(("expression", "says"), [
    ("", "five fields"),
    ("* * *", "has 3 field(s), not five"),
    ("60 * * * *", "minute field: 60 is out of range 0-59"),
    ("* 24 * * *", "hour field: 24 is out of range 0-23"),
    ("* * * 13 *", "month field: 13 is out of range 1-12"),
    ("5-1 * * * *", "runs backwards"),
    ("*/x * * * *", "step 'x' is not a positive number"),
    ("* * 31 2 *", "never fires"),
    ("x * * * *", "'x' is not a number"),
])
def test_bad_expressions_say_what_is_wrong(expression: str, says: str) -> None:
    with pytest.raises(CronError, match=re.escape(says)):
        Cron.parse(expression)


def test_an_unknown_time_zone_is_named() -> None:
    with pytest.raises(CronError, match="unknown time zone 'Europe/Atlantis'"):
        zone("Europe/Atlantis")


@settings(max_examples=60, deadline=None)
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2060, 1, 1),
                    timezones=st.just(UTC)),
       st.sampled_from(["*/7 * * * *", "0 * * * *", "30 2 * * *", "15 1-3 * * 0",
                        "0 0 1 * *"]),
       st.sampled_from(["Europe/Paris", "America/New_York", "Australia/Lord_Howe", "UTC"]))
def test_fire_times_strictly_increase_and_match_their_wall_clock(
        start: datetime, expression: str, tz: str) -> None:
    cron, moment = Cron.parse(expression), start
    for _ in range(30):
        following = cron.next_after(moment, zone(tz))
        assert following > moment
        wall = following.astimezone(zone(tz))
        on_time = wall.minute in cron.minutes and wall.hour in cron.hours
        assert on_time or wall.minute == 0 or wall.minute == 30  # else: a DST jump
        moment = following


def test_every_seconds_counts_from_the_epoch() -> None:
    spec = ScheduleSpec(workflow_id="w", every_seconds=5)
    start = datetime(2026, 1, 1, 12, 0, 3, 500, tzinfo=UTC)
    assert spec.next_after(start) == datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC)
    assert spec.next_after(datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC)) == \
        datetime(2026, 1, 1, 12, 0, 10, tzinfo=UTC)
    assert spec.count_between(start, start + timedelta(seconds=20)) == (
        4, datetime(2026, 1, 1, 12, 0, 20, tzinfo=UTC))
