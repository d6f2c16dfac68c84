"""The metrics functions a task may call, under the name the docs have always given them.

They report into the running master's Prometheus registry (``jobd.observability.metrics``,
which holds the registry itself); in a process without one they do nothing.
"""

from __future__ import annotations

from .observability.metrics import count_memcached_error, count_store_error, observe_schedule_lag

__all__ = ["observe_schedule_lag", "count_memcached_error", "count_store_error"]
