"""Retrying a store step through a passing outage, for a bounded time.

A master that starts while its store is briefly out of reach (MariaDB still
starting at boot, a deadlock between masters that start together, a dropped
connection) should wait a little rather than exit: systemd would restart it
anyway, and a deadlock is resolved by trying again. A store that refuses the
data, or stays away past the window, still ends the start with the store's
own reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from ..errors import StoreUnavailable
from .errors import describe, is_outage, is_store_error

log = logging.getLogger("jobd.store")

T = TypeVar("T")


def passing(error: BaseException) -> bool:
    """Whether ``error`` is an outage worth trying again (wrapped in ``StoreUnavailable`` or not)."""
    if isinstance(error, StoreUnavailable):
        return error.__cause__ is not None and passing(error.__cause__)
    return is_store_error(error) and is_outage(error)


def retry_outages(
    step: Callable[[], T], *, what: str, within: float,
    clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``step``; on an outage, try again with growing pauses until ``within`` seconds have passed."""
    deadline = clock() + within
    pause = 0.1
    while True:
        try:
            return step()
        except Exception as error:
            if not passing(error) or clock() + pause > deadline:
                raise
            log.warning("%s: the store did not answer (%s); trying again in %.1fs", what, describe(error.__cause__ or error), pause)
            sleep(pause)
            pause = min(pause * 2, 2.0)
