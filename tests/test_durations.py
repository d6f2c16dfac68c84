"""The one duration grammar, shared by jobd.toml and schedule files."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from jobd.config import load_config
from jobd.durations import GRAMMAR, format_duration, parse_duration, parse_whole_seconds
from jobd.errors import ConfigError
from jobd.schedules.files import parse_schedule_text


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30.0), (2.5, 2.5), ("30", 30.0), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("2d", 172_800.0),
        ("250ms", 0.25), ("1h30m", 5400.0), ("1h 30m", 5400.0), ("1H", 3600.0), ("1d 2h 3m 4s", 93_784.0),
        (" 5M ", 300.0), ("1.5h", 5400.0), (0, 0.0), ("1s 500ms", 1.5),
    ],
)
def test_durations_read_numbers_as_seconds_and_unit_parts_in_any_case_with_spaces(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "h", "5 minutes", "m5", "-3", "-5m", "1x", "30m1h", "1h1h", "1h,30m", True, None, [1]])
def test_malformed_durations_are_refused_with_the_grammar_in_the_message(value: object) -> None:
    with pytest.raises(ValueError) as raised:
        parse_duration(value)
    assert "is not a duration" in str(raised.value)


def test_negative_numbers_are_refused() -> None:
    with pytest.raises(ValueError, match="zero or more"):
        parse_duration(-1)


def test_schedule_durations_must_be_whole_seconds_and_may_refuse_zero() -> None:
    assert parse_whole_seconds("1h 30m") == timedelta(seconds=5400)
    with pytest.raises(ValueError, match="whole number of seconds"):
        parse_whole_seconds("1500ms")
    with pytest.raises(ValueError, match="more than zero"):
        parse_whole_seconds("0s", allow_zero=False)


def test_formatting_round_trips() -> None:
    assert format_duration(timedelta(seconds=5400)) == "1h30m"
    assert parse_whole_seconds(format_duration(timedelta(days=1, seconds=7))) == timedelta(days=1, seconds=7)


SCHEDULE = """\
[entries.a]
daemon = "ops"
cron = "* * * * *"
misfire_grace = "{grace}"
shell = {{ command = "true", timeout = "{timeout}" }}
"""


@pytest.mark.parametrize("text", ["1h 30m", "1H"])
def test_a_duration_jobd_toml_accepts_a_schedule_file_accepts_too(tmp_path: Path, text: str) -> None:
    config = tmp_path / "jobd.toml"
    config.write_text(f'store = "sqlite:///{tmp_path}/s.db"\n[daemons.ops]\ntimeout = "{text}"\n', encoding="utf-8")
    assert load_config(config).daemon("ops").timeout in (5400.0, 3600.0)
    schedule = parse_schedule_text(SCHEDULE.format(grace=text, timeout=text), "s.toml", "UTC")
    assert schedule["a"].misfire_grace.total_seconds() in (5400.0, 3600.0)
    assert schedule["a"].shell is not None and schedule["a"].shell.timeout is not None


def test_a_bad_duration_in_a_schedule_file_names_the_value_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_schedule_text(SCHEDULE.format(grace="5s", timeout="1h 30x"), "s.toml", "UTC")
    message = str(raised.value)
    assert message.count("'1h 30x'") == 1, message
    assert GRAMMAR in message
    with pytest.raises(ConfigError) as raised:
        parse_schedule_text(SCHEDULE.format(grace="1 hour", timeout="5s"), "s.toml", "UTC")
    assert str(raised.value).count("'1 hour'") == 1, str(raised.value)
