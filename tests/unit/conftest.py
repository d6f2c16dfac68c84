"""The unit layer: supervision and dispatch on a fake launcher and a manual clock, in milliseconds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .fakes import FakeLauncher, ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def launcher() -> Iterator[FakeLauncher]:
    fake = FakeLauncher()
    yield fake
    fake.close()
