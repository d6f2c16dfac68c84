"""Jobs waiting for a rate limit, as ``jobd status`` shows them (``daemons.NAME.rate_limited``).

The buckets live in the store, so the wait is the same whichever master
(or none) answers; read without a lock, as display data.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from .errors import StoreUnavailable
from .rate_limits import RateLimits


class RateLimited(Protocol):
    """A daemon's settings as far as its rate limits go (a ``DaemonConfig``, or a config digest's facts)."""

    def rate_limits(self) -> RateLimits: ...


class RateWaitsSource(Protocol):
    """Where the waits are read (``store.status_reads_sql.StatusReads.rate_waits``)."""

    def rate_waits(self, daemon: str, limits: RateLimits, now: float) -> list[dict[str, Any]]: ...


def rate_waits(
    daemons_settings: Mapping[str, RateLimited], source: RateWaitsSource, daemons: Iterable[str], *, now: float | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """For each rate-limited daemon of ``daemons`` with due jobs queued: its waits (one entry per key).

    ``daemons_settings`` are the config's daemons. Empty when the store is down
    or not initialised (``StoreUnavailable``): the wait is display data.
    """
    now = time.time() if now is None else now
    found: dict[str, list[dict[str, Any]]] = {}
    for name in daemons:
        config = daemons_settings.get(name)
        limits = config.rate_limits() if config is not None else None
        if limits is None or not limits.active:
            continue
        try:
            waits = source.rate_waits(name, limits, now)
        except StoreUnavailable:
            return found
        if waits:
            found[name] = waits
    return found


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
