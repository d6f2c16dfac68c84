"""When a submitted job is due: an aware datetime or epoch seconds, as a submit takes it, in the store's terms."""

from __future__ import annotations

import datetime as dt

from .errors import InvalidArgs


def epoch_seconds(run_at: dt.datetime | float | None) -> float | None:
    """``run_at`` as epoch seconds (None: due now); ``InvalidArgs`` for a naive datetime, whose zone is unknown."""
    if isinstance(run_at, dt.datetime):
        if run_at.tzinfo is None:
            raise InvalidArgs("run_at must be timezone-aware (e.g. datetime.now(timezone.utc))")
        return run_at.timestamp()
    return run_at
