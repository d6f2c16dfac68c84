"""When a submitted job is due: an aware datetime or epoch seconds, as a submit takes it, in the store's terms."""

from __future__ import annotations

import datetime as dt

from .errors import InvalidArgs
from .submit_options import check_run_at


def epoch_seconds(run_at: dt.datetime | float | None) -> float | None:
    """``run_at`` as epoch seconds (None: due now); ``InvalidArgs`` for a naive datetime, whose zone is unknown,
    and for anything but a finite time (``submit_options.check_run_at``)."""
    if isinstance(run_at, dt.datetime):
        if run_at.tzinfo is None:
            raise InvalidArgs("run_at must be timezone-aware (e.g. datetime.now(timezone.utc))")
        return run_at.timestamp()
    check_run_at(run_at)
    return run_at
