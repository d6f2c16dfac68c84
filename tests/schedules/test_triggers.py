"""Trigger arithmetic: pure functions of an entry and an instant, always answering in UTC."""

import random
from datetime import datetime, timedelta, timezone

import pytest

from jobd.schedules.triggers import (
    apply_jitter,
    fire_times_between,
    next_fire_time,
    next_fire_times,
    previous_fire_time,
)

from .conftest import local, make_entry, utc


def test_fire_times_are_aware_utc_whatever_the_entry_zone() -> None:
    entry = make_entry(cron="0 9 * * *", timezone="Europe/Warsaw")
    fire_time = next_fire_time(entry, utc(2025, 1, 10))
    assert fire_time == utc(2025, 1, 10, 8)  # 09:00 CET
    assert fire_time is not None and fire_time.tzinfo is timezone.utc
    assert next_fire_time(entry, utc(2025, 7, 10)) == utc(2025, 7, 10, 7)  # 09:00 CEST


def test_next_fire_time_is_strictly_after_the_given_instant() -> None:
    entry = make_entry(cron="0 * * * *")
    assert next_fire_time(entry, utc(2025, 1, 1, 10)) == utc(2025, 1, 1, 11)
    assert next_fire_time(entry, utc(2025, 1, 1, 10) - timedelta(microseconds=1)) == utc(2025, 1, 1, 10)


def test_a_naive_instant_is_refused_rather_than_guessed() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire_time(make_entry(cron="0 * * * *"), datetime(2025, 1, 1))


def test_intervals_sit_on_a_grid_anchored_at_the_epoch_so_every_master_agrees() -> None:
    entry = make_entry(every="5m")
    assert next_fire_time(entry, utc(2025, 1, 1, 12, 3, 10)) == utc(2025, 1, 1, 12, 5)
    assert next_fire_time(entry, utc(2025, 1, 1, 12, 5)) == utc(2025, 1, 1, 12, 10)
    assert next_fire_times(make_entry(every="1h30m"), utc(2025, 1, 1), 3) == [
        utc(2025, 1, 1, 1, 30), utc(2025, 1, 1, 3), utc(2025, 1, 1, 4, 30),
    ]


def test_a_one_off_fires_once_and_then_never() -> None:
    entry = make_entry(at="2026-11-21T03:00:00+00:00")
    assert next_fire_time(entry, utc(2026, 1, 1)) == utc(2026, 11, 21, 3)
    assert next_fire_time(entry, utc(2026, 11, 21, 3)) is None


def test_a_one_off_without_offset_is_wall_clock_time_in_the_entry_zone() -> None:
    entry = make_entry(at="2026-11-21T03:00:00", timezone="Europe/Warsaw")
    assert next_fire_time(entry, utc(2026, 1, 1)) == local("Europe/Warsaw", 2026, 11, 21, 3)


def test_a_one_off_in_a_dst_gap_fires_when_the_clock_has_jumped() -> None:
    entry = make_entry(at="2025-03-30T02:30:00", timezone="Europe/Warsaw")
    assert next_fire_time(entry, utc(2025, 1, 1)) == utc(2025, 3, 30, 1)  # 03:00 CEST


def test_fire_times_between_is_start_exclusive_end_inclusive_and_limited() -> None:
    entry = make_entry(cron="*/10 * * * *")
    assert fire_times_between(entry, utc(2025, 1, 1, 0, 0), utc(2025, 1, 1, 0, 30), 10) == [
        utc(2025, 1, 1, 0, 10), utc(2025, 1, 1, 0, 20), utc(2025, 1, 1, 0, 30),
    ]
    assert len(fire_times_between(entry, utc(2025, 1, 1), utc(2025, 1, 2), 4)) == 4


@pytest.mark.parametrize("season", ["spring", "autumn"])
@pytest.mark.parametrize(
    ("fields", "zone"),
    [
        ({"cron": "*/7 * * * *"}, "UTC"),
        ({"cron": "30 2 * * *"}, "Europe/Warsaw"),
        ({"cron": "15 * * * *"}, "America/New_York"),
        ({"cron": "*/20 1,2 * * *"}, "America/New_York"),
        ({"every": "45m"}, "UTC"),
        ({"cron": "0 0 13 * fri"}, "UTC"),
    ],
)
def test_previous_fire_time_agrees_with_forward_enumeration(
    fields: dict[str, str], zone: str, season: str
) -> None:
    entry = make_entry(timezone=zone, **fields)
    start, end = (utc(2025, 3, 1), utc(2025, 4, 1)) if season == "spring" else (utc(2025, 10, 20), utc(2025, 11, 20))
    forward = fire_times_between(entry, start, end, 100_000)
    rng = random.Random(7)
    for _ in range(30):
        moment = start + timedelta(seconds=rng.randrange(int((end - start).total_seconds())))
        expected = max((tick for tick in forward if tick <= moment), default=None)
        assert previous_fire_time(entry, moment, after=start) == expected


def test_previous_fire_time_respects_the_lower_bound() -> None:
    entry = make_entry(cron="0 0 * * *")
    assert previous_fire_time(entry, utc(2025, 1, 10, 12), after=utc(2025, 1, 10)) is None
    assert previous_fire_time(entry, utc(2025, 1, 10, 12), after=utc(2025, 1, 9, 23)) == utc(2025, 1, 10)


class FixedRandom:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_jitter_delays_by_a_fraction_drawn_from_the_injected_source() -> None:
    tick = utc(2025, 1, 1, 3)
    assert apply_jitter(tick, 60, FixedRandom(0.5)) == tick + timedelta(seconds=30)
    assert apply_jitter(tick, 60, FixedRandom(0.0)) == tick
    assert apply_jitter(tick, 0, FixedRandom(0.9)) == tick
    assert tick <= apply_jitter(tick, 60, random.Random(1)) < tick + timedelta(seconds=60)
