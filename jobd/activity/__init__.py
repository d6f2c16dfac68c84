"""Live activity: what masters, workers and jobs are doing now (display data, may be lost)."""

from __future__ import annotations

from ..config import JobdConfig
from .base import Activity
from .memcached import MemcachedActivity, namespace_for
from .memory import MemoryActivity


def shared_activity(config: JobdConfig) -> MemcachedActivity | None:
    """The deployment's memcached activity store, or None when no memcached is configured."""
    if not config.memcached:
        return None
    return MemcachedActivity(config.memcached, namespace_for(config.store))


__all__ = ["Activity", "MemcachedActivity", "MemoryActivity", "shared_activity", "namespace_for"]
