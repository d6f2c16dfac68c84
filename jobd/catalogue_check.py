"""A daemon's published catalogue as a submit checks an intent against it (``jobd.catalogue``).

Kept apart from publishing and reading, which need the store's SQLAlchemy
code, so that a submit through the driver alone (``jobd.ops.quick_submit``)
refuses an unknown task or bad args with the very same words.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import UnknownTask
from .store.catalogue_row import CatalogueRow
from .task_signature import ArgsCheck, signature_from_data


@dataclass(frozen=True)
class DaemonCatalogue:
    """One daemon's published tasks; an ``ArgsCheck`` each (None: Python could not read its signature)."""

    daemon: str
    version: str
    tasks: Mapping[str, ArgsCheck | None]
    published_at: float

    def check(self, task: str, args: dict[str, Any]) -> None:
        """``UnknownTask`` or ``InvalidArgs``, worded as when the task's own code checks them."""
        if task not in self.tasks:
            known = ", ".join(sorted(self.tasks)) or "none"
            raise UnknownTask(f"daemon {self.daemon!r} has no task {task!r} (its tasks: {known})")
        args_check = self.tasks[task]
        if args_check is not None:
            args_check.check(task, args)


def decode(row: CatalogueRow) -> DaemonCatalogue:
    """A row as the submit side uses it; ValueError if its JSON is not a catalogue."""
    data = json.loads(row.tasks)
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(tasks, dict):
        raise ValueError("no 'tasks' object")
    checks: dict[str, ArgsCheck | None] = {}
    for name, entry in tasks.items():
        parameters = entry.get("parameters") if isinstance(entry, dict) else None
        checks[name] = None if parameters is None else ArgsCheck(signature_from_data(parameters))
    return DaemonCatalogue(row.daemon, row.version, checks, row.published_at)
