"""Schedule ticks on screen: each in its entry's zone, labelled, with the year when it is not this year."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

from cli.ticks import tick_label
from jobd.schedules.files import parse_schedule_text
from jobd.schedules.triggers import next_fire_times

WARSAW = ZoneInfo("Europe/Warsaw")


def epoch(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, zone: dt.tzinfo = WARSAW) -> float:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=zone).timestamp()


NOW = epoch(2026, 12, 4, 16, 30)


def test_a_tick_shows_on_its_entrys_wall_clock_with_the_zones_abbreviation() -> None:
    assert tick_label(epoch(2026, 12, 4, 18, 0), "Europe/Warsaw", NOW) == "18:00 CET"
    assert tick_label(epoch(2026, 12, 4, 18, 0), "UTC", NOW) == "17:00 UTC"
    assert tick_label(epoch(2026, 12, 4, 18, 0), "America/New_York", NOW) == "12:00 EST"
    assert tick_label(epoch(2026, 12, 4, 18, 0, 5), "Europe/Warsaw", NOW) == "18:00:05 CET"


def test_the_date_appears_after_today_and_the_year_outside_this_year() -> None:
    assert tick_label(epoch(2026, 12, 5, 5), "Europe/Warsaw", NOW) == "12-05 05:00 CET"
    assert tick_label(epoch(2027, 1, 1, 5), "Europe/Warsaw", NOW) == "2027-01-01 05:00 CET"
    assert tick_label(epoch(2027, 7, 1, 5), "Europe/Warsaw", NOW) == "2027-07-01 05:00 CEST"


def test_today_is_the_entrys_today_not_the_hosts() -> None:
    late = epoch(2026, 12, 4, 23, 30, zone=dt.timezone.utc)  # already Dec 5 in Warsaw
    assert tick_label(epoch(2026, 12, 5, 1), "Europe/Warsaw", late) == "01:00 CET"
    new_year = epoch(2026, 12, 31, 23, 30, zone=dt.timezone.utc)
    assert tick_label(epoch(2027, 1, 1, 5), "Europe/Warsaw", new_year) == "05:00 CET"


def test_yearly_and_leap_day_entries_show_three_different_ticks() -> None:
    text = (
        '[entries.yearly]\ndaemon = "d"\ntask = "t"\ncron = "0 5 1 1 *"\ntimezone = "Europe/Warsaw"\n'
        '[entries.leap]\ndaemon = "d"\ntask = "t"\ncron = "0 5 29 2 *"\ntimezone = "Europe/Warsaw"\n'
    )
    schedule = parse_schedule_text(text, "s.toml", "UTC")
    now = dt.datetime.fromtimestamp(NOW, dt.timezone.utc)
    yearly = [tick_label(tick.timestamp(), "Europe/Warsaw", NOW) for tick in next_fire_times(schedule["yearly"], now, 3)]
    assert yearly == ["2027-01-01 05:00 CET", "2028-01-01 05:00 CET", "2029-01-01 05:00 CET"]
    leap = [tick_label(tick.timestamp(), "Europe/Warsaw", NOW) for tick in next_fire_times(schedule["leap"], now, 3)]
    assert leap == ["2028-02-29 05:00 CET", "2032-02-29 05:00 CET", "2036-02-29 05:00 CET"]


def test_without_a_zone_the_hosts_zone_is_used_and_still_labelled() -> None:
    label = tick_label(NOW + 3600, None, NOW)
    assert label.split()[-1] != "" and len(label.split()) >= 2


def test_jobd_top_shows_each_schedules_next_tick_in_its_own_zone() -> None:
    from rich.console import Console

    from cli.top import daemons_table, schedules_table
    from jobd.activity.view import schedule_entries

    published = {"schedules": [{"daemon": "billing", "name": "yearly", "next_run": epoch(2027, 1, 1, 5), "timezone": "Europe/Warsaw"}]}
    entries = schedule_entries([published])
    assert entries[0]["timezone"] == "Europe/Warsaw"
    console = Console(width=160, record=True)
    console.print(schedules_table(entries, NOW, 5))
    view = {"generated_at": NOW, "schedules": entries, "daemons": {"billing": {"workers": 1, "next_run": epoch(2027, 1, 1, 5)}}}
    console.print(daemons_table(view, 160))
    console.print(daemons_table(view, 80))
    assert console.export_text().count("2027-01-01 05:00 CET") == 3


def test_jobd_schedules_lists_a_leap_day_entrys_ticks_with_their_years(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    config = tmp_path / "jobd.toml"
    config.write_text(
        f'store = "sqlite:///{tmp_path}/s.db"\nsocket = "{tmp_path}/j.sock"\n[daemons.ops]\n'
        '[schedules.entries.leap]\ndaemon = "ops"\ncron = "0 5 29 2 *"\ntimezone = "Europe/Warsaw"\n'
        'shell = { command = "true" }\n',
        encoding="utf-8",
    )
    listing = subprocess.run(
        [sys.executable, "-m", "jobd.cli.app", "schedules", "--config", str(config)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "160", "TZ": "America/Los_Angeles"},
    )
    assert listing.returncode == 0, listing.stderr
    today = dt.datetime.now(WARSAW)
    leap_years = [year for year in range(today.year, today.year + 13)
                  if year % 4 == 0 and (year % 100 or year % 400 == 0) and dt.datetime(year, 2, 29, 5, tzinfo=WARSAW) > today][:3]
    for year in leap_years:
        label = f"{year}-02-29 05:00 CET" if year != today.year else "02-29 05:00 CET"
        assert label in listing.stdout, listing.stdout
