"""Helpers for schedule tests: entries built from the same fields a schedule file holds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from jobd.schedules.entry import ScheduleEntry
from jobd.schedules.files import build_entry

UTC = timezone.utc


def make_entry(name: str = "job", *, timezone: str = "UTC", **fields: Any) -> ScheduleEntry:
    """An entry as ``[entries.NAME]`` with ``fields`` would give (daemon/task defaulted)."""
    raw = {"daemon": "reports", "task": "reports.build", **fields}
    return build_entry(name, raw, source="test.toml", default_zone=ZoneInfo(timezone))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, microsecond: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


def local(zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, fold: int = 0) -> datetime:
    """A wall-clock time in ``zone``, as an instant (UTC)."""
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone), fold=fold).astimezone(UTC)


@pytest.fixture
def entry() -> Callable[..., ScheduleEntry]:
    return make_entry
