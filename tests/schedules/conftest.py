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


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def local(zone: str, *parts: int, fold: int = 0) -> datetime:
    """A wall-clock time in ``zone``, as an instant (UTC)."""
    return datetime(*parts, tzinfo=ZoneInfo(zone), fold=fold).astimezone(UTC)  # type: ignore[misc]


@pytest.fixture
def entry() -> Callable[..., ScheduleEntry]:
    return make_entry
