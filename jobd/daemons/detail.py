"""`jobd status DAEMON`'s store part: queue depth, the oldest queued job, recent failures; and the whole
answer while no master runs.

Pure: the callers read the store their way — a master through its ``Store``
(``control.DaemonControls.detail``), the command with no master through the
``Store`` or the database driver alone (``jobd.ops.status_reads``) — and
these functions shape what they read into the same answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..job import Job
from ..states import JobState
from .plan import DaemonSizing, Desired

RECENT_FAILURES = 5
#: The states whose jobs are listed as the daemon's recent failures.
FAILED_STATES = (JobState.DEAD, JobState.RETRYING)


def queue_report(depth: tuple[int, float | None], failures: Sequence[Job], now: float) -> dict[str, Any]:
    """Queue depth (how many queued, since when the oldest) and the recent failures, as status shows them."""
    queued, oldest = depth
    return {
        "queue": {"depth": queued, "oldest_created_at": oldest, "oldest_age": round(now - oldest, 1) if oldest else None},
        "recent_failures": [
            {"id": job.id, "task": job.task, "state": str(job.state), "attempts": job.attempts,
             "error": job.error, "finished_at": job.finished_at or job.updated_at}
            for job in failures
        ],
    }


def stopped_daemon_detail(
    name: str, settings: DaemonSizing, desired: Desired, counts: Mapping[str, int], report: Mapping[str, Any],
) -> dict[str, Any]:
    """`jobd status DAEMON` while no master runs: its desired state, counts, queue and failures."""
    daemon = {"daemon": name, "desired": desired.to_dict(settings), "state": "stopped", "size": 0,
              "workers": [], "counts": dict(counts), "restart": None, **report}
    return {"master": {"running": False}, "daemon": daemon}
