"""DST in the entry's time zone, driven by a simulated master loop with an injected clock.

Rule under test (see jobd/schedules/triggers.py):

* expressions pinned to certain hours fire once per wall-clock tick — a
  skipped tick fires once at the first instant after the gap, a repeated
  tick only at its first occurrence;
* expressions matching every hour fire at every real instant whose local
  reading matches (as Vixie cron does for wildcard jobs);
* ``every`` intervals are elapsed time.

2025 transitions: Europe/Warsaw 30 Mar 02:00→03:00 and 26 Oct 03:00→02:00
(both at 01:00 UTC); America/New_York 9 Mar 02:00→03:00 (07:00 UTC) and
2 Nov 02:00→01:00 (06:00 UTC).
"""

from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger

from jobd.schedules.entry import ScheduleEntry
from jobd.schedules.policy import plan_ticks

from .conftest import UTC, local, make_entry, utc

WARSAW, NEW_YORK = "Europe/Warsaw", "America/New_York"


def run_master(entry: ScheduleEntry, start: datetime, end: datetime, step: timedelta = timedelta(seconds=20)) -> list[datetime]:
    """Tick like the master does, every ``step`` from ``start`` to ``end``; return every fired tick."""
    fired: list[datetime] = []
    cursor = plan_ticks(entry, None, start).cursor
    now = start
    while now < end:
        now += step
        plan = plan_ticks(entry, cursor, now)
        fired.extend(plan.fire)
        cursor = plan.cursor
    return fired


def local_readings(ticks: list[datetime], zone: str) -> list[str]:
    return [tick.astimezone(ZoneInfo(zone)).strftime("%m-%d %H:%M %Z") for tick in ticks]


# --- daily, pinned to an hour: once per wall-clock tick -------------------------------------

@pytest.mark.parametrize(
    ("zone", "day", "expected_local"),
    [
        (WARSAW, (2025, 3, 30), "03-30 03:00 CEST"),
        (NEW_YORK, (2025, 3, 9), "03-09 03:00 EDT"),
    ],
)
def test_daily_0230_on_spring_forward_fires_once_at_the_first_instant_after_the_gap(
    zone: str, day: tuple[int, int, int], expected_local: str
) -> None:
    entry = make_entry(cron="30 2 * * *", timezone=zone, misfire="skip")
    before = local(zone, *day, 0, 0) - timedelta(days=1)
    fired = run_master(entry, before, before + timedelta(days=3), step=timedelta(seconds=90))
    readings = local_readings(fired, zone)
    assert len(fired) == 3  # one per day, none lost, none doubled
    assert readings[1] == expected_local
    assert readings[0].endswith("02:30 " + ("CET" if zone == WARSAW else "EST"))
    assert readings[2].endswith("02:30 " + ("CEST" if zone == WARSAW else "EDT"))


@pytest.mark.parametrize(
    ("zone", "cron", "day", "expected_local"),
    [
        (WARSAW, "30 2 * * *", (2025, 10, 26), "10-26 02:30 CEST"),
        (NEW_YORK, "30 1 * * *", (2025, 11, 2), "11-02 01:30 EDT"),
    ],
)
def test_daily_tick_in_the_repeated_hour_on_fall_back_fires_once_at_its_first_occurrence(
    zone: str, cron: str, day: tuple[int, int, int], expected_local: str
) -> None:
    entry = make_entry(cron=cron, timezone=zone, misfire="skip")
    start = local(zone, *day, 0, 0)
    fired = run_master(entry, start, start + timedelta(hours=6))
    assert local_readings(fired, zone) == [expected_local]


def test_apscheduler_alone_fires_the_repeated_tick_twice_which_jobd_corrects() -> None:
    # Characterisation of APScheduler 3.11, the reason for jobd's own DST walk.
    trigger = CronTrigger.from_crontab("30 2 * * *", timezone=ZoneInfo(WARSAW))
    first = trigger.get_next_fire_time(None, utc(2025, 10, 25, 12))
    second = trigger.get_next_fire_time(first, first)
    assert first is not None and second is not None
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=1)  # 02:30 CEST, then 02:30 CET


def test_several_ticks_skipped_by_the_gap_collapse_into_one() -> None:
    entry = make_entry(cron="*/20 2 * * *", timezone=WARSAW, misfire="skip")
    start = local(WARSAW, 2025, 3, 30, 0, 0)
    fired = run_master(entry, start, start + timedelta(hours=5))
    assert local_readings(fired, WARSAW) == ["03-30 03:00 CEST"]


def test_pinned_hours_keep_their_ticks_on_the_days_around_a_change() -> None:
    entry = make_entry(cron="0 1-3 * * *", timezone=WARSAW, misfire="skip")
    start = local(WARSAW, 2025, 10, 26, 0, 0)
    fired = run_master(entry, start, start + timedelta(hours=6))
    assert local_readings(fired, WARSAW) == ["10-26 01:00 CEST", "10-26 02:00 CEST", "10-26 03:00 CET"]


# --- hourly and more often: every real hour -----------------------------------------------

@pytest.mark.parametrize(("zone", "day"), [(WARSAW, (2025, 3, 30)), (NEW_YORK, (2025, 3, 9))])
def test_hourly_on_spring_forward_runs_every_real_hour_of_the_23_hour_day(zone: str, day: tuple[int, int, int]) -> None:
    entry = make_entry(cron="30 * * * *", timezone=zone, misfire="skip")
    start = local(zone, *day, 0, 0)
    fired = run_master(entry, start, start + timedelta(hours=23), step=timedelta(seconds=60))
    assert len(fired) == 23
    assert all(later - earlier == timedelta(hours=1) for earlier, later in zip(fired, fired[1:]))
    assert not any(" 02:" in reading for reading in local_readings(fired, zone))  # 02:30 does not exist


@pytest.mark.parametrize(("zone", "day"), [(WARSAW, (2025, 10, 26)), (NEW_YORK, (2025, 11, 2))])
def test_hourly_on_fall_back_runs_every_real_hour_of_the_25_hour_day(zone: str, day: tuple[int, int, int]) -> None:
    entry = make_entry(cron="30 * * * *", timezone=zone, misfire="skip")
    start = local(zone, *day, 0, 0)
    fired = run_master(entry, start, start + timedelta(hours=25), step=timedelta(seconds=60))
    assert len(fired) == 25
    assert all(later - earlier == timedelta(hours=1) for earlier, later in zip(fired, fired[1:]))
    assert len(set(fired)) == 25  # each instant once: a tick is never fired twice


def test_a_minutely_job_keeps_running_through_the_repeated_hour() -> None:
    entry = make_entry(cron="* * * * *", timezone=WARSAW, misfire="skip")
    start = utc(2025, 10, 26, 0, 0)
    fired = run_master(entry, start, start + timedelta(hours=2), step=timedelta(seconds=15))
    assert len(fired) == 120
    assert Counter(local_readings(fired, WARSAW)).most_common(1)[0][1] == 1


# --- intervals: elapsed time ---------------------------------------------------------------

@pytest.mark.parametrize(
    ("zone", "start"),
    [(WARSAW, utc(2025, 3, 29, 22)), (WARSAW, utc(2025, 10, 25, 22)), (NEW_YORK, utc(2025, 3, 9, 4)), (NEW_YORK, utc(2025, 11, 2, 3))],
)
def test_every_interval_keeps_elapsed_time_across_dst(zone: str, start: datetime) -> None:
    entry = make_entry(every="30m", timezone=zone, misfire="skip")
    fired = run_master(entry, start, start + timedelta(hours=6), step=timedelta(seconds=30))
    assert len(fired) == 12
    assert all(later - earlier == timedelta(minutes=30) for earlier, later in zip(fired, fired[1:]))
