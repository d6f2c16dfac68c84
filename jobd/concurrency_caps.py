"""Global concurrency caps: how many of a daemon's (or a task's) jobs may run at once.

Pure arithmetic over counts; the store applies it under a lock so the caps
hold across every master sharing the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Budget:
    """How many jobs one claim may take, in total and per capped task."""

    total: int
    per_task: dict[str, int] = field(default_factory=dict)

    def choose(self, candidates: list[tuple[int, str]]) -> list[int]:
        """Pick job ids from ``(id, task)`` candidates (best first) within the budget."""
        left = dict(self.per_task)
        chosen: list[int] = []
        for job_id, task in candidates:
            if len(chosen) >= self.total:
                break
            if task in left:
                if left[task] <= 0:
                    continue
                left[task] -= 1
            chosen.append(job_id)
        return chosen


@dataclass(frozen=True)
class ConcurrencyCaps:
    """A daemon's cap over all hosts (None: none) and per-task caps."""

    daemon: int | None = None
    tasks: Mapping[str, int] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.daemon is not None or bool(self.tasks)

    def slots(self, wanted: int, running: Mapping[str, int]) -> Budget:
        """The budget for a claim of up to ``wanted`` jobs, given what runs now (task → count)."""
        total = wanted
        if self.daemon is not None:
            total = min(total, self.daemon - sum(running.values()))
        per_task = {task: max(0, cap - running.get(task, 0)) for task, cap in self.tasks.items()}
        return Budget(total=max(0, total), per_task=per_task)
