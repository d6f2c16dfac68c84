"""Prometheus metrics of a master, served on a local address (``metrics = "127.0.0.1:9187"``).

Two kinds of series, kept apart on purpose:

* **events** (jobs finished, their run time, store and memcached errors,
  schedule lag) are counted where they happen, with prometheus-client's
  thread-safe counters and histograms;
* **state** (queue depth, age of the oldest due job, workers per state,
  worker restarts and recycles) is a snapshot the master loop refreshes
  about once a second (``refresh``) and the scrape thread only reads. The
  scrape never queries the store or walks the pools itself, so a slow
  scraper cannot slow the loop, and a store outage cannot fail a scrape.

Each master has its own registry (not the library's global one), so tests
and embedders can run several. Other modules report through the module
functions (``observe_schedule_lag``, ``count_memcached_error``,
``count_store_error``), which are no-ops when no endpoint is configured.
The series are documented in docs/metrics.md.

This module holds what the master always needs — the snapshot records and
the reporting functions — and imports no Prometheus code: the registry, its
series and the endpoint (``prometheus.Metrics``) are loaded only by a master
configured with ``metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .prometheus import Metrics


@dataclass(frozen=True)
class PoolState:
    """What the loop knows of one daemon's pool at refresh time."""

    workers: dict[str, int]  # state → count
    restarts: int
    recycles: dict[str, int]  # reason → count
    queue_depth: int = 0
    oldest_due_age: float = 0.0


@dataclass(frozen=True)
class Snapshot:
    pools: dict[str, PoolState] = field(default_factory=dict)
    draining: bool = False


# -- reporting from anywhere in the master ---------------------------------

_active: Metrics | None = None


def install(metrics: Metrics | None) -> None:
    """Make ``metrics`` the target of the module functions below (None: no-ops)."""
    global _active
    _active = metrics


def observe_schedule_lag(entry: str, seconds: float) -> None:
    """A schedule entry fired ``seconds`` after its due time (call it from the scheduler)."""
    if _active is not None:
        _active.schedule_lag.labels(entry).observe(max(0.0, seconds))


def count_store_error(operation: str) -> None:
    if _active is not None:
        _active.store_errors.labels(operation).inc()


def count_memcached_error(operation: str) -> None:
    """A memcached call failed (activity is display data: count it, go on)."""
    if _active is not None:
        _active.memcached_errors.labels(operation).inc()


def count_alert(event: str, result: str) -> None:
    if _active is not None:
        _active.alerts.labels(event, result).inc()


def queue_ages(now: float, due_since: dict[str, tuple[int, float | None]]) -> dict[str, tuple[int, float]]:
    """``{daemon: (depth, oldest age)}`` from ``{daemon: (depth, oldest due time)}``; pure."""
    return {
        daemon: (int(depth), max(0.0, now - oldest) if oldest is not None else 0.0)
        for daemon, (depth, oldest) in due_since.items()
    }
