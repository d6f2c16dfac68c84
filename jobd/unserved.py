"""Jobs nobody will run, and rows in states jobd does not know: said out loud by status and top.

Applications submit with their own SQL, so the store can hold jobs for a
daemon that no live master runs (a typo, a daemon removed from the config,
a host that is down) and, from before schema v4, rows whose state is not a
jobd state. Neither is ever claimed; both used to be invisible in ``jobd
status`` and ``jobd top``, so the jobs waited unseen. The logic here is pure
(counts and the daemons live masters run in, notes out); ``from_store``
gathers its inputs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from .states import JobState

#: States in which a job waits for a master of its daemon.
WAITING = (JobState.QUEUED, JobState.SCHEDULED, JobState.RETRYING)
_KNOWN = frozenset(str(state) for state in JobState)


def unserved(counts: Mapping[str, Mapping[str, int]], served: Iterable[str]) -> list[dict[str, Any]]:
    """Daemons with waiting jobs that no live master runs: ``[{"daemon", "queued", "scheduled", "retrying", "note"}]``."""
    running = set(served)
    found = []
    for daemon in sorted(counts):
        if daemon in running:
            continue
        waiting = {str(state): int(counts[daemon].get(str(state), 0)) for state in WAITING}
        if any(waiting.values()):
            parts = ", ".join(f"{count} {state}" for state, count in waiting.items() if count)
            found.append({"daemon": daemon, **waiting, "note": f"{daemon}: {parts}, no master runs this daemon"})
    return found


def unknown_states(counts: Mapping[str, Mapping[str, int]]) -> list[dict[str, Any]]:
    """Rows whose state is not a jobd state: ``[{"daemon", "state", "jobs", "note"}]`` (never claimed)."""
    found = []
    for daemon in sorted(counts):
        for state, jobs in sorted(counts[daemon].items()):
            if str(state) not in _KNOWN and jobs:
                found.append({
                    "daemon": daemon, "state": state, "jobs": int(jobs),
                    "note": f"{daemon}: {jobs} job(s) in state {state!r}, not a jobd state (never run; "
                            f"see `jobd jobs --state {state}`)",
                })
    return found


def notes(report: Mapping[str, Any]) -> list[str]:
    """The human lines for a report's ``unserved`` and ``unknown_states``."""
    return [entry["note"] for key in ("unserved", "unknown_states") for entry in report.get(key) or []]


def from_store(store: Any, *, lease: float, now: float | None = None, counts: Mapping[str, Mapping[str, int]] | None = None) -> dict[str, Any]:
    """``{"unserved": …, "unknown_states": …}`` from the store's counts and its live masters."""
    now = time.time() if now is None else now
    return from_records(store.jobs.counts() if counts is None else counts, store.masters.all(), lease=lease, now=now)


def from_records(counts: Mapping[str, Mapping[str, int]], masters: Iterable[Any], *, lease: float, now: float) -> dict[str, Any]:
    """``from_store`` on counts and registry records already read (``MasterRecord``: ``is_alive``, ``daemons``)."""
    served = {daemon for record in masters if record.is_alive(now, lease) for daemon in record.daemons}
    return {"unserved": unserved(counts, served), "unknown_states": unknown_states(counts)}
