"""The chaos soak's verdicts, as pure functions over what it recorded.

Nothing here touches a process, a file or the clock: the soak reads the
execution log and the store, then asks these functions

* which runs of one job overlapped in time in two processes
  (``overlapping_runs``);
* which schedule ticks fired twice, and which expected ticks never fired,
  allowing what the entry's misfire policy may drop during a store outage
  (``check_ticks``);
* how long after each store cut the first job created after it started
  (``recovery_times``).

They are unit-tested with hand-made inputs (tests/faults/test_chaos_smoke.py).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone


# -- the execution log ----------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One run of a task as its lines in the execution log tell it.

    ``end`` is the time of its ``E``/``F`` line when it finished; for a run
    that never finished (killed) it is its last beat — a lower bound of its
    real end, so an overlap computed with it really happened.
    """

    job_id: int
    attempt: int
    pid: int
    master: str
    token: str
    start: float
    end: float
    outcome: str  # "ended" (returned), "raised", "open" (no end line: killed, or still running)


def parse_execution_log(lines: Iterable[str]) -> tuple[list[Run], int]:
    """Assemble the runs from the log's lines; returns (runs, malformed line count)."""
    starts: dict[str, tuple[int, int, int, str, float]] = {}
    last_seen: dict[str, float] = {}
    outcomes: dict[str, str] = {}
    malformed = 0
    for line in lines:
        parts = line.split()
        if len(parts) != 7 or parts[0] not in ("S", "B", "E", "F"):
            malformed += 1
            continue
        kind, job_id, attempt, pid, master, token, moment = parts
        try:
            at = float(moment)
            identity = (int(job_id), int(attempt), int(pid), master, at)
        except ValueError:
            malformed += 1
            continue
        if kind == "S":
            starts[token] = identity
        last_seen[token] = max(at, last_seen.get(token, at))
        if kind in ("E", "F"):
            outcomes[token] = "ended" if kind == "E" else "raised"
    runs = [
        Run(job_id, attempt, pid, master, token, start, last_seen[token], outcomes.get(token, "open"))
        for token, (job_id, attempt, pid, master, start) in starts.items()
    ]
    malformed += sum(1 for token in last_seen if token not in starts)  # lines of a run whose start is missing
    return sorted(runs, key=lambda run: (run.start, run.token)), malformed


def overlapping_runs(runs: Sequence[Run]) -> list[tuple[Run, Run]]:
    """Pairs of runs of the same job, in two processes, whose intervals overlap.

    Intervals are open at their ends: a run that starts exactly when the
    other ended does not overlap it. A run known only by its start (killed
    at once) still overlaps a run that was going on when it started.
    """
    by_job: dict[int, list[Run]] = defaultdict(list)
    for run in runs:
        by_job[run.job_id].append(run)
    pairs: list[tuple[Run, Run]] = []
    for job_runs in by_job.values():
        job_runs.sort(key=lambda run: run.start)
        for index, first in enumerate(job_runs):
            for second in job_runs[index + 1:]:
                # sorted by start, so first.start <= second.start; one pid is one process at a time
                if second.start < first.end and first.start < second.end and first.pid != second.pid:
                    pairs.append((first, second))
    return pairs


def superseded_runs(runs: Sequence[Run]) -> list[Run]:
    """Runs that started after a run of a later attempt of the same job had started.

    A later attempt exists only once the store gave the job to someone else;
    a worker starting an earlier one afterwards ran a stale hand-off.
    """
    by_job: dict[int, list[Run]] = defaultdict(list)
    for run in runs:
        by_job[run.job_id].append(run)
    return [
        run for job_runs in by_job.values() for run in job_runs
        if any(other.attempt > run.attempt and other.start < run.start for other in job_runs)
    ]


def runs_outliving_their_master(runs: Sequence[Run], killed_at: dict[str, float]) -> list[tuple[Run, float]]:
    """Runs still going after their master incarnation was killed, with how long after (seconds).

    ``killed_at`` maps a master incarnation (``Run.master``) to the time of
    its ``kill -9``. A worker must die with its master (within 1 s): a run
    logging past its master's death shows one that did not.
    """
    found = []
    for run in runs:
        moment = killed_at.get(run.master)
        if moment is not None and run.start < moment < run.end:
            found.append((run, run.end - moment))
    return found


# -- schedule ticks ---------------------------------------------------------------


def fire_key_second(key: str, entry: str) -> int | None:
    """The tick (epoch second, rounded down) of an entry's fire key ``ENTRY@2026-11-21T03:00:00Z``; None if not that entry's."""
    name, separator, stamp = key.rpartition("@")
    if not separator or name != entry or not stamp.endswith("Z"):
        return None
    text = stamp[:-1]
    for pattern in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S"):
        try:
            moment = datetime.strptime(text, pattern).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
        return math.floor(moment.timestamp())
    return None


@dataclass(frozen=True)
class TickReport:
    expected: int  # whole seconds in the window: one tick each
    fired: int  # distinct ticks of the window that have a job
    doubles: list[int]  # ticks with more than one job (anywhere, not only in the window)
    missed: list[int]  # expected ticks with no job that the misfire policy does not excuse
    excused: list[int] = field(default_factory=list)  # expected ticks with no job, dropped as the policy allows
    foreign: int = 0  # fire keys not of this entry, or unreadable


def check_ticks(
    fire_keys: Iterable[str],
    entry: str,
    window: tuple[float, float],
    *,
    policy: str = "catch_up",
    grace: float = 5.0,
    max_catch_up: int = 10,
    outages: Sequence[tuple[float, float]] = (),
) -> TickReport:
    """Compare an every-second entry's fire keys with the seconds of ``window``.

    Every whole second in ``window`` (inclusive) is a tick that must have
    exactly one job. A missing tick is excused only when the store was out
    (``outages``: (start, end) epoch pairs) around it in a way the policy
    allows to drop: ``skip`` and ``run_once`` may drop ticks from ``grace``
    before an outage to its end (``run_once`` fires one of them, which is
    then simply not missed); ``catch_up`` fires the latest ``max_catch_up``
    after an outage, so it may drop only older ones.
    """
    per_second: Counter[int] = Counter()
    foreign = 0
    for key in fire_keys:
        second = fire_key_second(key, entry)
        if second is None:
            foreign += 1
        else:
            per_second[second] += 1
    first, last = math.ceil(window[0]), math.floor(window[1])
    expected = list(range(first, last + 1))
    missing = [second for second in expected if per_second[second] == 0]
    excused = [second for second in missing if _excused(second, policy, grace, max_catch_up, outages)]
    return TickReport(
        expected=len(expected),
        fired=sum(1 for second in expected if per_second[second] > 0),
        doubles=sorted(second for second, count in per_second.items() if count > 1),
        missed=[second for second in missing if second not in set(excused)],
        excused=excused,
        foreign=foreign,
    )


def _excused(second: int, policy: str, grace: float, max_catch_up: int, outages: Sequence[tuple[float, float]]) -> bool:
    for start, end in outages:
        if policy in ("skip", "run_once") and start - grace <= second <= end:
            return True
        if policy == "catch_up" and start - grace <= second < end - max_catch_up:
            return True
    return False


# -- recovery after a store cut -------------------------------------------------------


def recovery_times(
    cuts: Sequence[tuple[float, float]], starts: Sequence[tuple[float, float]], run_end: float
) -> list[float | None]:
    """For each cut (start, end): seconds from its end to the first start of a job created after it.

    ``starts`` are (run start, job created at) pairs. A job created after the
    cut ended had to be written to the store, and claimed from it, once the
    store was back — unlike a job prefetched before the cut. None when no
    such job started before the next cut began (or ``run_end``).
    """
    ordered = sorted(cuts)
    times: list[float | None] = []
    for index, (_start, end) in enumerate(ordered):
        until = ordered[index + 1][0] if index + 1 < len(ordered) else run_end
        after = [started for started, created in starts if end <= started < until and created >= end]
        times.append(min(after) - end if after else None)
    return times
