"""Misfire and overlap decisions and fire keys, with an injected clock."""

from datetime import datetime, timedelta

import pytest

from jobd.schedules.policy import (
    FIRE_KEY_MAX_LENGTH,
    fire_key,
    overlap_decision,
    plan_ticks,
    ticks_to_fire,
)

from .conftest import make_entry, utc

# A master stopped at 10:00:30 and restarted at 10:05:30 missed the ticks of 10:01 … 10:05.
STOPPED, RESTARTED = utc(2025, 6, 1, 10, 0, 30), utc(2025, 6, 1, 10, 5, 30)
MISSED = [utc(2025, 6, 1, 10, minute) for minute in range(1, 6)]


def test_master_down_for_5_ticks_with_skip_fires_none() -> None:
    plan = plan_ticks(make_entry(cron="* * * * *", misfire="skip"), STOPPED, RESTARTED)
    assert plan.fire == ()
    assert plan.skipped == (MISSED[0], MISSED[-1])
    assert plan.cursor == RESTARTED


def test_master_down_for_5_ticks_with_run_once_fires_one_job_for_the_latest() -> None:
    plan = plan_ticks(make_entry(cron="* * * * *", misfire="run_once"), STOPPED, RESTARTED)
    assert plan.fire == (MISSED[-1],)
    assert plan.skipped == (MISSED[0], MISSED[-2])


def test_master_down_for_5_ticks_with_catch_up_fires_each_of_them() -> None:
    plan = plan_ticks(make_entry(cron="* * * * *", misfire="catch_up"), STOPPED, RESTARTED)
    assert list(plan.fire) == MISSED
    assert plan.skipped is None


def test_catch_up_is_capped_to_the_most_recent_max_catch_up_ticks() -> None:
    plan = plan_ticks(make_entry(cron="* * * * *", misfire="catch_up", max_catch_up=3), STOPPED, RESTARTED)
    assert list(plan.fire) == MISSED[-3:]
    assert plan.skipped == (MISSED[0], MISSED[1])


def test_catch_up_after_a_long_outage_stays_cheap_and_capped() -> None:
    entry = make_entry(cron="* * * * *", misfire="catch_up", max_catch_up=4)
    plan = plan_ticks(entry, utc(2024, 1, 1), utc(2025, 6, 1, 10, 0, 30))
    assert list(plan.fire) == [utc(2025, 6, 1, 9, 57), utc(2025, 6, 1, 9, 58), utc(2025, 6, 1, 9, 59), utc(2025, 6, 1, 10)]
    assert plan.skipped == (utc(2024, 1, 1, 0, 1), utc(2025, 6, 1, 9, 56))


def test_skip_still_fires_a_tick_due_within_the_grace_window() -> None:
    entry = make_entry(cron="* * * * *", misfire="skip", misfire_grace="5s")
    assert ticks_to_fire(entry, STOPPED, utc(2025, 6, 1, 10, 5, 4)) == [MISSED[-1]]
    assert ticks_to_fire(entry, STOPPED, utc(2025, 6, 1, 10, 5, 6)) == []


@pytest.mark.parametrize("loop_period", [0.1, 0.3, 0.5, 1.0, 1.7, 3.0])
def test_skip_never_loses_a_tick_when_the_master_ticks_within_the_grace(loop_period: float) -> None:
    entry = make_entry(cron="* * * * * *", misfire="skip")  # every second: the hardest case
    start = utc(2025, 6, 1, 10)
    cursor, now = start, start
    fired: list[datetime] = []
    while now < start + timedelta(seconds=30):
        now += timedelta(seconds=loop_period)
        plan = plan_ticks(entry, cursor, now)
        fired.extend(plan.fire)
        cursor = plan.cursor
    assert fired == [start + timedelta(seconds=second) for second in range(1, int((now - start).total_seconds()) + 1)]


def test_skip_drops_exactly_the_ticks_older_than_the_grace() -> None:
    entry = make_entry(cron="* * * * * *", misfire="skip", misfire_grace="2s")
    plan = plan_ticks(entry, utc(2025, 6, 1, 10), utc(2025, 6, 1, 10, 0, 10))
    assert plan.fire == (utc(2025, 6, 1, 10, 0, 8), utc(2025, 6, 1, 10, 0, 9), utc(2025, 6, 1, 10, 0, 10))
    assert plan.skipped == (utc(2025, 6, 1, 10, 0, 1), utc(2025, 6, 1, 10, 0, 7))


def test_on_time_ticking_fires_every_tick_once_under_every_policy() -> None:
    for misfire in ("skip", "run_once", "catch_up"):
        entry = make_entry(cron="*/5 * * * *", misfire=misfire)
        start = utc(2025, 6, 1)
        fired: list[datetime] = []
        cursor = plan_ticks(entry, None, start).cursor
        now = start
        while now < start + timedelta(hours=1):
            now += timedelta(milliseconds=700)
            plan = plan_ticks(entry, cursor, now)
            fired.extend(plan.fire)
            cursor = plan.cursor
        assert fired == [start + timedelta(minutes=5 * i) for i in range(1, 13)], misfire


def test_a_brand_new_entry_fires_nothing_from_the_past() -> None:
    for misfire in ("skip", "run_once", "catch_up"):
        plan = plan_ticks(make_entry(cron="* * * * *", misfire=misfire), None, RESTARTED)
        assert plan.fire == () and plan.cursor == RESTARTED


def test_nothing_due_moves_the_cursor_to_now() -> None:
    plan = plan_ticks(make_entry(cron="0 3 * * *"), utc(2025, 6, 1, 10), utc(2025, 6, 1, 11))
    assert plan.fire == () and plan.skipped is None and plan.cursor == utc(2025, 6, 1, 11)


def test_a_clock_stepping_back_never_refires_a_decided_tick() -> None:
    entry = make_entry(cron="* * * * *", misfire="catch_up")
    plan = plan_ticks(entry, RESTARTED, RESTARTED - timedelta(minutes=3))
    assert plan.fire == () and plan.cursor == RESTARTED


def test_a_paused_entry_fires_nothing_and_resuming_does_not_replay_the_pause() -> None:
    entry = make_entry(cron="* * * * *", misfire="catch_up", enabled=False)
    plan = plan_ticks(entry, STOPPED, RESTARTED)
    assert plan.fire == () and plan.cursor == RESTARTED


def test_a_finished_one_off_fires_nothing_more() -> None:
    entry = make_entry(at="2025-06-01T10:03:00+00:00", misfire="run_once")
    assert ticks_to_fire(entry, STOPPED, RESTARTED) == [utc(2025, 6, 1, 10, 3)]
    assert ticks_to_fire(entry, RESTARTED, RESTARTED + timedelta(days=1)) == []


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_ticks(make_entry(cron="* * * * *"), None, RESTARTED.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("overlap", "active", "decision"),
    [
        ("forbid", False, "fire"),
        ("forbid", True, "skip"),
        ("allow", True, "fire"),
        ("replace", True, "replace"),
        ("replace", False, "fire"),
    ],
)
def test_overlap_policy_decides_what_a_tick_does_while_the_previous_job_runs(
    overlap: str, active: bool, decision: str
) -> None:
    assert overlap_decision(make_entry(cron="* * * * *", overlap=overlap), active) == decision


def test_overlap_defaults_to_forbid() -> None:
    assert overlap_decision(make_entry(cron="* * * * *"), True) == "skip"


def test_fire_key_is_the_entry_name_and_the_utc_tick() -> None:
    assert fire_key("nightly-report", utc(2026, 11, 21, 3)) == "nightly-report@2026-11-21T03:00:00Z"
    warsaw_tick = utc(2026, 11, 21, 3).astimezone(make_entry(cron="* * * * *", timezone="Europe/Warsaw").zone)
    assert fire_key("nightly-report", warsaw_tick) == "nightly-report@2026-11-21T03:00:00Z"


def test_fire_key_hashes_long_names_to_fit_a_mysql_unique_index() -> None:
    long_a, long_b = "a" * 300, "a" * 299 + "b"
    key_a, key_b = fire_key(long_a, utc(2026, 1, 1)), fire_key(long_b, utc(2026, 1, 1))
    assert len(key_a) <= FIRE_KEY_MAX_LENGTH and len(key_b) <= FIRE_KEY_MAX_LENGTH
    assert key_a != key_b
    assert key_a == fire_key(long_a, utc(2026, 1, 1))  # stable
    assert key_a.endswith("@2026-01-01T00:00:00Z")
    assert len(fire_key("x" * 200, utc(2026, 1, 1, 0, 0, 0, 5))) <= FIRE_KEY_MAX_LENGTH


def test_fire_key_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError):
        fire_key("x", utc(2026, 1, 1).replace(tzinfo=None))
