"""The jobs a pool claimed ahead of its workers: the highest priority goes to the next worker with room.

A FIFO backlog let a priority-100 job claimed into it wait behind the
hundred no-op jobs claimed before it. Kept as a heap on (priority, order),
the next job out is the most urgent, and jobs of one priority still leave
in the order they were claimed (the store claims them highest priority
first, then by id).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator

from ..job import Job


class Backlog:
    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Job]] = []  # (-priority, order, job)
        self._after = itertools.count()  # order of jobs added behind those waiting
        self._before = itertools.count(-1, -1)  # order of jobs put back in front of those waiting

    def __len__(self) -> int:
        return len(self._heap)

    def __iter__(self) -> Iterator[Job]:
        """The waiting jobs, in the order they would leave."""
        return (job for _priority, _order, job in sorted(self._heap, key=lambda entry: entry[:2]))

    def extend(self, jobs: Iterable[Job]) -> None:
        """Add claimed jobs behind those of their priority already waiting."""
        for job in jobs:
            heapq.heappush(self._heap, (-job.priority, next(self._after), job))

    def put_back(self, jobs: Iterable[Job]) -> None:
        """Return jobs just taken (a worker could not take them) ahead of those of their priority, in their order."""
        for job in reversed(list(jobs)):
            heapq.heappush(self._heap, (-job.priority, next(self._before), job))

    def popleft(self) -> Job:
        """Take the most urgent job (``IndexError`` if none waits)."""
        return heapq.heappop(self._heap)[2]

    def remove(self, job_id: int) -> Job | None:
        """Take out the job ``job_id``; None if it does not wait here."""
        for index, (_priority, _order, job) in enumerate(self._heap):
            if job.id == job_id:
                self._heap[index] = self._heap[-1]
                self._heap.pop()
                heapq.heapify(self._heap)
                return job
        return None

    def take_all(self) -> list[Job]:
        """Empty the backlog; return what waited, in the order it would have left."""
        jobs = list(self)
        self._heap.clear()
        return jobs

    def top_priority(self) -> int | None:
        """The priority of the job that leaves next; None if empty."""
        return -self._heap[0][0] if self._heap else None

    def lowest_priority(self) -> int | None:
        """The lowest priority waiting (a job above it should not wait behind it); None if empty."""
        return -max(entry[0] for entry in self._heap) if self._heap else None
