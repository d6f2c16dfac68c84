"""Jobs waiting for a rate limit, as ``jobd status`` shows them (``daemons.NAME.rate_limited``).

The buckets live in the store, so the wait is the same whichever master
(or none) answers; read without a lock, as display data.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import StoreUnavailable

if TYPE_CHECKING:  # ``notes`` serves `jobd status` for people, which loads neither
    from .config import JobdConfig
    from .store import Store


def rate_waits(settings: JobdConfig, store: Store, daemons: Iterable[str], *, now: float | None = None) -> dict[str, list[dict[str, Any]]]:
    """For each rate-limited daemon of ``daemons`` with due jobs queued: its waits (one entry per key).

    Empty when the store is down or not initialised: the wait is display data.
    """
    from .store.errors import raised_as_unavailable

    now = time.time() if now is None else now
    found: dict[str, list[dict[str, Any]]] = {}
    for name in daemons:
        config = settings.daemons.get(name)
        limits = config.rate_limits() if config is not None else None
        if limits is None or not limits.active:
            continue
        try:
            with raised_as_unavailable():
                waits = store.jobs.rate_buckets.waits(name, limits, now)
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
