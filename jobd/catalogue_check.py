"""A daemon's published catalogue as a submit checks an intent against it (``jobd.catalogue``).

Kept apart from publishing and reading, which need the store's SQLAlchemy
code, so that a submit through the driver alone (``jobd.ops.quick_submit``)
refuses an unknown task or bad args with the very same words, and holds
what it read for as long as a full submit does (``CatalogueCache``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import defaults
from .errors import InvalidArgs, StoreUnavailable, UnknownTask
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

log = logging.getLogger("jobd.catalogue")


def require_object(args: Any) -> None:
    """``InvalidArgs`` unless ``args`` is a JSON object's dict (a task's keyword arguments)."""
    if not isinstance(args, dict):
        raise InvalidArgs("args must be a JSON object such as {\"campaign_id\": 42}")


def check_intent(catalogues: CatalogueCache, daemon: str, task: str, args: dict[str, Any]) -> bool:
    """Check ``task`` and ``args`` against ``daemon``'s published catalogue; False if none was published.

    ``UnknownTask`` or ``InvalidArgs`` when it refuses them. A refusal reads
    the catalogue again first: a task a reloaded master just started serving
    is accepted at once, not after the copy held here grows old.
    """
    published = catalogues.get(daemon)
    if published is None:
        return False
    try:
        published.check(task, args)
    except (UnknownTask, InvalidArgs):
        fresh = catalogues.get(daemon, fresh=True)  # published since we read it? A refusal is worth a look
        if fresh is None or fresh.version == published.version:
            raise
        fresh.check(task, args)
    return True


class CatalogueCache:
    """The published catalogue as one process holds it: read at most once per ``max_age``, or on demand.

    A row that is not a catalogue (written by hand, say) is left out with a
    warning: that daemon's intents are then checked by importing its code.
    A store that fails while a copy is held leaves the copy in use.
    """

    def __init__(
        self, read: Callable[[], list[CatalogueRow]], *,
        max_age: float = defaults.CATALOGUE_MAX_AGE_SECONDS, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._max_age = max_age
        self._clock = clock
        self._daemons: dict[str, DaemonCatalogue] = {}
        self._read_at: float | None = None

    def get(self, daemon: str, *, fresh: bool = False) -> DaemonCatalogue | None:
        """``daemon``'s catalogue, None if none was published; ``fresh`` reads the store first."""
        now = self._clock()
        if fresh or self._read_at is None or now - self._read_at >= self._max_age:
            self._refresh(now)
        return self._daemons.get(daemon)

    def _refresh(self, now: float) -> None:
        try:
            rows = self._read()
        except StoreUnavailable:
            if self._read_at is None:
                raise
            return  # keep the copy held; the next submit asks again
        daemons = {}
        for row in rows:
            held = self._daemons.get(row.daemon)
            if held is not None and held.version == row.version:
                daemons[row.daemon] = held  # unchanged: not decoded again
                continue
            try:
                daemons[row.daemon] = decode(row)
            except (ValueError, TypeError, AttributeError) as error:
                log.warning("the task catalogue of daemon %r is not readable (%s): its intents are checked "
                            "by importing its task code; `jobd check` publishes it again", row.daemon, error)
        self._daemons, self._read_at = daemons, now
