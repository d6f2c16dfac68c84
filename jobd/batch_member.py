"""``ctx.batch``: what a running member of a batch holds to add members to its own batch.

Workers stay light (``jobd.workers.settings``): the submit API, with the
config's validation and SQLAlchemy behind it, is loaded the first time a
task adds to its batch, never by a worker whose tasks do not.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class MemberBatch:
    """The batch of the running job ``job_id``; ``submit``/``submit_many`` as on ``jobd.batch``'s handle."""

    def __init__(self, batch_id: int, job_id: int, config_source: str) -> None:
        self.id = batch_id
        self._job_id = job_id
        self._config_source = config_source
        self._handle: Any = None

    def submit(self, daemon: str, task: str, args: dict[str, Any] | None = None, **options: Any) -> int:
        """Add one member (checked like a submit); its id."""
        return int(self._opened().submit(daemon, task, args, **options))

    def submit_many(self, daemon: str, task: str, args_list: Iterable[dict[str, Any]], **options: Any) -> list[int]:
        """Add many members of one task in one transaction; their ids, in order."""
        return list(self._opened().submit_many(daemon, task, args_list, **options))

    def progress(self) -> Any:
        """The batch as the store has it now (``jobd.batch_record.Batch``)."""
        return self._opened().progress()

    def _opened(self) -> Any:
        if self._handle is None:
            from .batches import member_batch  # the submit API: loaded only by a task that fans out

            self._handle = member_batch(self._config_source, self.id, self._job_id)
        return self._handle
