"""jobd's cron dialect is cron's, not APScheduler's ``from_crontab``."""

from datetime import datetime

import pytest

from jobd.schedules.cron import compile_cron


def walls(expression: str, start: datetime, count: int) -> list[datetime]:
    calendar = compile_cron(expression)
    times: list[datetime] = []
    wall: datetime | None = start
    for _ in range(count):
        assert wall is not None
        wall = calendar.next_wall_time(wall)
        assert wall is not None
        times.append(wall)
    return times


def test_weekday_1_is_monday_as_in_cron_not_tuesday_as_in_apscheduler() -> None:
    assert {wall.strftime("%a") for wall in walls("0 9 * * 1", datetime(2025, 1, 1), 5)} == {"Mon"}


@pytest.mark.parametrize("sunday", ["0", "7", "sun", "SUN"])
def test_sunday_is_0_or_7_or_its_name(sunday: str) -> None:
    assert {wall.strftime("%a") for wall in walls(f"0 9 * * {sunday}", datetime(2025, 1, 1), 3)} == {"Sun"}


def test_weekday_ranges_steps_and_lists_use_cron_numbering() -> None:
    assert {w.strftime("%a") for w in walls("0 9 * * 1-5", datetime(2025, 1, 1), 10)} == {"Mon", "Tue", "Wed", "Thu", "Fri"}
    assert {w.strftime("%a") for w in walls("0 9 * * */2", datetime(2025, 1, 1), 8)} == {"Sun", "Tue", "Thu", "Sat"}
    assert {w.strftime("%a") for w in walls("0 9 * * 5-7", datetime(2025, 1, 1), 6)} == {"Fri", "Sat", "Sun"}
    assert {w.strftime("%a") for w in walls("0 9 * * mon,wed-thu", datetime(2025, 1, 1), 6)} == {"Mon", "Wed", "Thu"}


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    days = walls("0 0 13 * fri", datetime(2025, 1, 1), 6)
    assert all(day.day == 13 or day.strftime("%a") == "Fri" for day in days)
    assert datetime(2025, 1, 3) in days and datetime(2025, 1, 13) in days


def test_a_field_starting_with_a_star_counts_as_unrestricted_like_vixie_cron() -> None:
    # "*/2" in day-of-month still means "and", as in Vixie cron and cronie
    days = walls("0 0 */2 * mon", datetime(2025, 1, 1), 4)
    assert all(day.day % 2 == 1 and day.strftime("%a") == "Mon" for day in days)


def test_six_fields_start_with_seconds() -> None:
    assert walls("*/15 0 12 * * *", datetime(2025, 1, 1), 3) == [
        datetime(2025, 1, 1, 12, 0, 0), datetime(2025, 1, 1, 12, 0, 15), datetime(2025, 1, 1, 12, 0, 30),
    ]


def test_every_hour_tells_hourly_periodic_schedules_from_pinned_ones() -> None:
    assert compile_cron("30 * * * *").every_hour
    assert compile_cron("*/5 * * * *").every_hour
    assert compile_cron("0 0-23 * * *").every_hour
    assert not compile_cron("30 2 * * *").every_hour
    assert not compile_cron("0 */2 * * *").every_hour


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("61 * * * *", "higher than the maximum"),
        ("* * *", "5 fields"),
        ("* * * * * * *", "5 fields"),
        ("0 0 * * 8", "weekday"),
        ("0 0 * * fri-mon", "start after end"),
        ("0 0 ? * *", "Unrecognized expression"),
        ("0 0 30 2 *", "never fires"),
        ("*/0 * * * *", "higher than 0"),
    ],
)
def test_invalid_expressions_are_refused_with_the_reason(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compile_cron(expression)
