from datetime import timedelta

import pytest

from jobd.schedules.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("2d", 172_800), ("1d2h3m4s", 93_784), (0, 0), (90, 90)],
)
def test_durations_are_read_in_days_hours_minutes_seconds(text: str | int, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["-5m", "5", "5 minutes", "1.5h", "30m1h", "", "h", True])
def test_malformed_or_negative_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_a_zero_interval_is_refused_where_zero_makes_no_sense() -> None:
    with pytest.raises(ValueError, match="positive"):
        parse_duration("0s", allow_zero=False)


def test_formatting_round_trips() -> None:
    assert format_duration(timedelta(seconds=5400)) == "1h30m"
    assert parse_duration(format_duration(timedelta(days=1, seconds=7))) == timedelta(days=1, seconds=7)
