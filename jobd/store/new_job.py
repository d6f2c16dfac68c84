"""A job to insert, as a submitter asks for it: validated and made into the row every backend stores.

Kept apart from the jobs table's SQLAlchemy code (``store.jobs``) so that a
submit through the driver alone (``jobd.ops.quick_submit``) builds exactly
the same row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import defaults
from ..errors import InvalidArgs
from ..job import encode_args
from ..states import JobState
from ..submit_options import check_submit_options, check_unique_key


@dataclass(frozen=True)
class NewJob:
    """What a submitter asks for; validated before it reaches the store."""

    daemon: str
    task: str
    args: dict[str, Any]
    priority: int = 0
    run_at: float | None = None
    unique_key: str | None = None
    fire_key: str | None = None
    origin: str = "intent"
    max_attempts: int | None = None
    handed_to: str | None = None  # a master this job is claimed for as it is inserted (``jobd.handoff``)
    batch_id: int | None = None  # set only by ``BatchBook.add_members``, which counts it in the batch

    def __post_init__(self) -> None:
        check_submit_options(priority=self.priority, run_at=self.run_at, max_attempts=self.max_attempts)
        check_unique_key(self.unique_key)

    @property
    def encoded_args(self) -> str:
        """The args as stored (``InvalidArgs`` if they are not JSON); encoded once per job.

        Kept in the instance's own dict rather than by ``functools.cached_property``,
        whose lock (Python 3.11) cost a submit more than the encoding itself.
        """
        encoded: str | None = self.__dict__.get("_encoded_args")
        if encoded is None:
            encoded = self.__dict__["_encoded_args"] = encode_args(self.args)
        return encoded

    def row(self, now: float) -> dict[str, Any]:
        encoded = self.encoded_args
        # A character is at most 4 bytes in UTF-8: most args need no encoding to be measured.
        if len(encoded) * 4 > defaults.MAX_ARGS_BYTES and len(encoded.encode()) > defaults.MAX_ARGS_BYTES:
            raise InvalidArgs(f"args of {self.task!r} exceed {defaults.MAX_ARGS_BYTES} bytes")
        due_later = self.run_at is not None and self.run_at > now
        if self.handed_to is not None:
            if due_later or self.unique_key is not None:
                raise ValueError("only a job due now and without a unique key is handed to a master")
            return {
                **self._common_row(encoded, now),
                "state": str(JobState.RUNNING), "attempts": 1, "owner": self.handed_to, "started_at": now,
            }
        return {**self._common_row(encoded, now), "state": str(JobState.SCHEDULED if due_later else JobState.QUEUED)}

    def _common_row(self, encoded: str, now: float) -> dict[str, Any]:
        return {
            "daemon": self.daemon,
            "task": self.task,
            "args": encoded,
            "priority": self.priority,
            "attempts": 0,
            "max_attempts": self.max_attempts,
            "run_at": self.run_at,
            "unique_key": self.unique_key,
            "fire_key": self.fire_key,
            "origin": self.origin,
            "created_at": now,
            "updated_at": now,
            "batch_id": self.batch_id,
        }
