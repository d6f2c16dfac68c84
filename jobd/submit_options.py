"""What a submit takes besides its args — priority, run_at, max_attempts, a unique key — checked before anything is written.

A submit writes them straight into the jobs table, and SQLite keeps
whatever it is given: a priority of ``"high"``, a ``max_attempts`` of 1.5, a
``run_at`` of NaN (stored as NULL: due at once) or of infinity (never due,
and not JSON when shown). Every job to be inserted is made through
``NewJob`` or ``BulkJobs``, which call these, so every way in — ``jobd.submit``,
``jobd.submit_many``, a batch, `jobd trigger`, the HTTP API — refuses them
with ``InvalidArgs`` naming the option and what it takes.
"""

from __future__ import annotations

import math
from typing import Any

from . import defaults
from .errors import InvalidArgs


def check_priority(priority: Any) -> None:
    """``priority`` is a whole number the jobs table can hold."""
    low, high = defaults.PRIORITY_RANGE
    if not _whole(priority) or not low <= priority <= high:
        raise InvalidArgs(f"priority must be a whole number from {low} to {high}, not {priority!r}")


def check_max_attempts(max_attempts: Any) -> None:
    """``max_attempts`` is None (the daemon's own) or a whole number of attempts, as a daemon's may be."""
    if max_attempts is not None and (not _whole(max_attempts) or not 1 <= max_attempts <= defaults.MOST_ATTEMPTS):
        raise InvalidArgs(
            f"max_attempts must be a whole number from 1 to {defaults.MOST_ATTEMPTS} "
            f"(or None: the daemon's own), not {max_attempts!r}"
        )


def check_run_at(run_at: Any) -> None:
    """``run_at`` is None (due now) or a finite time in epoch seconds (one in the past is due now)."""
    if run_at is not None and (isinstance(run_at, bool) or not isinstance(run_at, (int, float)) or not math.isfinite(run_at)):
        raise InvalidArgs(f"run_at must be a finite time (epoch seconds, or an aware datetime), not {run_at!r}")


def check_unique_key(unique_key: Any) -> None:
    """``unique_key`` is None or a non-empty string the jobs table's unique index holds."""
    if unique_key is not None and (not isinstance(unique_key, str) or not unique_key or len(unique_key) > defaults.MAX_NAME_LENGTH):
        raise InvalidArgs(f"unique key {unique_key!r} must be a non-empty string of at most {defaults.MAX_NAME_LENGTH} characters")


def check_submit_options(*, priority: Any, run_at: Any, max_attempts: Any) -> None:
    """All three, in the order a reader meets them in a submit's signature."""
    check_run_at(run_at)
    check_priority(priority)
    check_max_attempts(max_attempts)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
