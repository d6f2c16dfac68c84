"""The result cache: a task that declares ``cache_ttl`` is computed once per args while fresh.

After a job of such a task succeeds (and only once the store has recorded
it), the master caches ``{"job_id", "result", "finished_at"}`` under a key
of the task name and its canonical JSON args. ``jobd.submit(...,
reuse_cached=True)`` looks the key up first and, while the entry is fresh,
returns the id of the job that computed it instead of running the task
again (read the result with ``jobd.get_job(id).result``). The cache lives in
memcached when it is configured, else in the local master's memory (asked
over the control socket). It is a cache: a miss just means the task runs.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from ..control import client
from ..errors import JobdError
from ..job import encode_json
from .base import Record

if TYPE_CHECKING:
    from ..config import JobdConfig


def result_key(task: str, args: dict[str, Any]) -> str:
    """The cache key of ``task`` called with ``args``: the same for equal args in any key order."""
    return hashlib.sha256(f"{task}\0{encode_json(args)}".encode()).hexdigest()


def unique_key_for(task: str, args: dict[str, Any]) -> str:
    """The unique key a ``reuse_cached`` submit uses, so equal requests in flight share one job."""
    return "cached:" + result_key(task, args)


def cache_record(job_id: int, result: Any, finished_at: float) -> Record:
    return {"job_id": job_id, "result": result, "finished_at": finished_at}


def find_cached(config: JobdConfig, task: str, args: dict[str, Any]) -> Record | None:
    """The fresh cached result of ``task(args)``, or None (also when no cache answers)."""
    key = result_key(task, args)
    if config.memcached:
        from . import shared_activity

        activity = shared_activity(config)
        assert activity is not None
        try:
            return activity.get_result(key)
        finally:
            activity.close()
    try:
        found = client.call(config.socket, "cached_result", {"key": key}, timeout=5.0)
    except (JobdError, OSError):
        return None
    return found if isinstance(found, dict) else None
