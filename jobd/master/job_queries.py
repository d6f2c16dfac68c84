"""`jobd jobs` and `jobd job ID` answered by a running master from the store it holds open.

A command that asks the master saves itself opening the store (and loading
the database layer): the queries are the operator's own
(``jobd.ops.job_reads.find_jobs`` and ``store.jobs.get``), run on the master's
store. Arguments arrive from a socket, so each is checked for type and size
(``ProtocolError``, exit 2, nothing read). A reply that would be larger than
``CONTROL_MAX_JOBS_REPLY_BYTES`` is declined with ``{"jobs": null}``: the
command then reads the store itself, as it does when no master answers.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .. import defaults
from ..errors import ProtocolError

if TYPE_CHECKING:
    from ..store.store_core import StoreCore

MAX_FILTER_CHARS = 200
MAX_STATES = 64


def list_jobs(store: StoreCore, args: dict[str, Any]) -> dict[str, Any]:
    """``{"jobs": [job dicts], "unknown_states": [...]}``, newest first; ``{"jobs": None}`` if too large."""
    from ..ops.job_reads import find_jobs

    states = args.get("states", [])
    if not isinstance(states, list) or len(states) > MAX_STATES or not all(_is_filter(value) for value in states):
        raise ProtocolError(f"list_jobs: states must be a list of at most {MAX_STATES} non-empty strings")
    daemon, task, limit = args.get("daemon"), args.get("task"), args.get("limit", 50)
    for name, value in (("daemon", daemon), ("task", task)):
        if value is not None and not _is_filter(value):
            raise ProtocolError(f"list_jobs: {name} must be a non-empty string of at most {MAX_FILTER_CHARS} characters")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= defaults.JOBS_LIST_MAX:
        raise ProtocolError(f"list_jobs: limit must be an integer from 1 to {defaults.JOBS_LIST_MAX}")
    listing = find_jobs(store, states=states, daemon=daemon, task=task, limit=limit)
    jobs = [job.to_dict() for job in listing.jobs]
    if len(json.dumps(jobs, default=str)) > defaults.CONTROL_MAX_JOBS_REPLY_BYTES:
        return {"jobs": None, "unknown_states": listing.unknown_states}
    return {"jobs": jobs, "unknown_states": listing.unknown_states}


def show_job(store: StoreCore, args: dict[str, Any]) -> dict[str, Any]:
    """One job's dict; ``UnknownJob`` (exit 2) as from the store; ``{"job": None}`` if too large."""
    job_id = args.get("id")
    if isinstance(job_id, bool) or not isinstance(job_id, int):
        raise ProtocolError("show_job: id must be an integer")
    job = store.jobs.get(job_id).to_dict()
    if len(json.dumps(job, default=str)) > defaults.CONTROL_MAX_JOBS_REPLY_BYTES:
        return {"job": None}
    return {"job": job}


def _is_filter(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_FILTER_CHARS
