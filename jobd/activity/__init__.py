"""Live activity: what masters, workers and jobs are doing now (display data, may be lost).

The memcached backend (and pymemcache with it) is loaded only where one is
configured: a worker of a deployment without memcached never imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .base import Activity
from .memory import MemoryActivity

if TYPE_CHECKING:
    from .memcached import MemcachedActivity, namespace_for


class ActivitySettings(Protocol):
    """What finding the shared activity needs of a config (a ``JobdConfig``, or a digest's ``StatusFacts``)."""

    @property
    def memcached(self) -> Sequence[str]: ...

    @property
    def store(self) -> str: ...


def shared_activity(config: ActivitySettings) -> MemcachedActivity | None:
    """The deployment's memcached activity store, or None when no memcached is configured."""
    if not config.memcached:
        return None
    from .memcached import MemcachedActivity, namespace_for

    return MemcachedActivity(config.memcached, namespace_for(config.store))


def __getattr__(name: str) -> Any:
    if name in {"MemcachedActivity", "namespace_for"}:
        from . import memcached

        return getattr(memcached, name)
    raise AttributeError(f"module 'jobd.activity' has no attribute {name!r}")


__all__ = ["Activity", "MemcachedActivity", "MemoryActivity", "shared_activity", "namespace_for"]
