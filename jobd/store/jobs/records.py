"""The records that cross the jobs table's boundary: a job to insert, an attempt's outcome, a row decoded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...job import Job, encode_json
from ...states import JobState
from ..new_job import NewJob
from ..row_decoding import decode_row

__all__ = ["NewJob", "Outcome", "group_key", "row_to_job"]  # NewJob lives in ``store.new_job``: a submit needs no SQLAlchemy


@dataclass(frozen=True)
class Outcome:
    """How one running attempt ended, ready to be written (see ``JobQueue.apply_outcomes``)."""

    job_id: int
    attempt: int
    state: JobState
    values: dict[str, Any]
    batch_id: int | None = None  # the job's batch, whose counters count a final state in the same transaction


def row_to_job(row: Any) -> Job:
    """Decode a jobs row; never raises: a row jobd cannot use says why (``row_decoding``)."""
    return decode_row(row)


def group_key(values: dict[str, Any]) -> Any:
    """Outcomes writing equal values share one UPDATE; the values are strings, numbers or None."""
    key = tuple(sorted(values.items()))
    try:
        hash(key)
        return key
    except TypeError:  # an unhashable value: group by its JSON instead
        return encode_json(values)
