"""Jobs waiting for a rate limit, as ``jobd status`` shows them (``daemons.NAME.rate_limited``).

The buckets live in the store, so the wait is the same whichever master
(or none) answers; read without a lock, as display data.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from .config import JobdConfig
from .errors import JobdError
from .store import Store


def add_rate_waits(report: dict[str, Any], settings: JobdConfig, store: Store, *, now: float | None = None) -> None:
    """Set ``rate_limited`` on each rate-limited daemon of ``report`` that has due jobs queued (a list, one entry per key)."""
    now = time.time() if now is None else now
    for name, daemon in (report.get("daemons") or {}).items():
        config = settings.daemons.get(name)
        limits = config.rate_limits() if config is not None else None
        if limits is None or not limits.active:
            continue
        try:
            waits = store.jobs.rate_buckets.waits(name, limits, now)
        except (JobdError, sa.exc.DBAPIError):  # the store is down or not initialised: nothing to add
            return
        if waits:
            daemon["rate_limited"] = waits


def notes(report: Mapping[str, Any]) -> list[str]:
    """One human line per key whose jobs wait for its rate."""
    lines = []
    for name, daemon in (report.get("daemons") or {}).items():
        for wait in daemon.get("rate_limited") or []:
            what = f"of {wait['task']} " if wait["task"] else ""
            lines.append(
                f"{name}: {wait['waiting']} job(s) {what}wait for the rate limit of {_rate(wait['per_second'])} "
                f"(burst {wait['burst']:g}; next start in {wait['next_token_in']:.2f} s)"
            )
    return lines


def _rate(per_second: float) -> str:
    for unit, seconds in (("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        count = per_second * seconds
        if count >= 1 and abs(count - round(count)) < 1e-6:
            return f"{round(count)}/{unit}"
    return f"{per_second:g}/s"
