"""Which waiting job goes to which worker: the pure half of ``Pool.feed``.

The least loaded worker with room gets the next job; a worker takes more
than one only while the jobs it is given are short (``pipelining``), so a
long job never waits behind another in a worker's pipe.

A job more urgent than everything a full worker holds may go to it anyway
(one past its depth): the worker runs the most urgent job it holds next, so
the job starts as soon as the short one running ends, instead of waiting in
the master until the worker reports jobs done and has room again.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence

from ..job import Job
from .backlog import Backlog

# A job's timeout if it may run; None if it cannot run at all (the caller has ended it).
Admit = Callable[[Job], float | None]


def plan_feed(
    waiting: Backlog, loads: Sequence[int], slots: Sequence[int], is_short: Callable[[str], bool], admit: Admit,
    jump_above: Sequence[int | None] = (),
) -> dict[int, list[tuple[Job, float]]]:
    """Take the most urgent jobs of ``waiting`` for the workers with free ``slots``; return them by worker index.

    ``loads[i]`` is how many jobs worker ``i`` holds already. A job ``admit``
    refuses is dropped from ``waiting`` without taking a slot. ``jump_above[i]``,
    if not None, is the highest priority full worker ``i`` holds: a job above
    it may go to that worker all the same (at most one per feed).
    """
    free = list(slots)
    room = [(loads[index], index) for index in range(len(free)) if free[index] > 0]
    heapq.heapify(room)
    handed: dict[int, list[tuple[Job, float]]] = {}
    while room and waiting:
        load, index = heapq.heappop(room)
        job = waiting.popleft()
        timeout = admit(job)
        if timeout is None:
            heapq.heappush(room, (load, index))
            continue
        handed.setdefault(index, []).append((job, timeout))
        free[index] -= 1
        if free[index] > 0 and is_short(job.task):
            heapq.heappush(room, (load + 1, index))  # more may wait behind this one
    full = sorted((loads[index], index, floor) for index, floor in enumerate(jump_above) if floor is not None)
    for _load, index, floor in full:  # the least loaded first
        while (top := waiting.top_priority()) is not None and top > floor:
            job = waiting.popleft()
            timeout = admit(job)
            if timeout is not None:
                handed.setdefault(index, []).append((job, timeout))
                break
    return handed
