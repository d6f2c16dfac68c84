"""The job record as it crosses boundaries (store → master → CLI)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from .errors import InvalidArgs
from .states import JobState


@dataclass(frozen=True)
class Job:
    """One execution request of a task: a row of the jobs table, decoded."""

    id: int
    daemon: str
    task: str
    args: dict[str, Any]
    state: JobState
    priority: int = 0
    attempts: int = 0
    max_attempts: int | None = None
    run_at: float | None = None
    unique_key: str | None = None
    fire_key: str | None = None
    origin: str = "intent"
    owner: str | None = None
    worker_pid: int | None = None
    checkpoint: Any = None
    progress: dict[str, Any] | None = None
    error: str | None = None
    traceback: str | None = None
    result: Any = None
    cancel_requested: bool = False
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    updated_at: float | None = None
    batch_id: int | None = None  # the batch it is a member of (``jobd.batches``)
    args_problem: str | None = None  # set when a row's args are not a JSON object
    row_problem: str | None = None  # set when another field of the row cannot be used (``store.row_decoding``)

    @classmethod
    def handed(
        cls, id: int, daemon: str, task: str, args: dict[str, Any], *,
        priority: int, max_attempts: int | None, owner: str, now: float,
    ) -> Job:
        """A job a submit inserted already claimed for ``owner`` and handed over (``jobd.handoff``).

        The row holds the same (``NewJob.row`` with ``handed_to``: running,
        first attempt, ``owner``'s), so the master need not read it back.
        """
        return cls(
            id, daemon, task, args, JobState.RUNNING, priority=priority, attempts=1, max_attempts=max_attempts,
            owner=owner, created_at=now, started_at=now, updated_at=now,
        )

    @property
    def unrunnable(self) -> str | None:
        """Why this job can never run as stored (the master ends it dead with this reason), or None."""
        if self.args_problem and self.row_problem:
            return f"{self.row_problem}; {self.args_problem}"
        return self.row_problem or self.args_problem

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = str(self.state)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        """The job ``to_dict`` described (a master's answer to ``jobd jobs``); ValueError/TypeError if it is not one."""
        return cls(**{**data, "state": JobState(data["state"])})


def encode_json(value: Any) -> str:
    """Canonical JSON text for the store (sorted keys, no spaces: stable for cache keys).

    Strict JSON: NaN and Infinity raise ValueError rather than being written
    as ``NaN``, which no other reader of the store would parse.
    """
    return _ENCODER.encode(value)


# json.dumps with options builds a new encoder per call; every submit encodes.
# allow_nan=False: NaN and Infinity are not JSON; stored, they break every other reader of the row.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_args(args: dict[str, Any]) -> str:
    """A job's args as stored; ``InvalidArgs`` if they are not JSON (NaN and Infinity are not)."""
    try:
        return encode_json(args)
    except ValueError as error:
        if "Out of range float" in str(error):
            raise InvalidArgs("args hold NaN or Infinity, which JSON does not allow (other readers of the store could not parse them)") from None
        raise InvalidArgs(f"args are not JSON-serialisable: {error}") from None
    except TypeError as error:
        raise InvalidArgs(f"args are not JSON-serialisable: {error}") from None


def decode_json(text: str | None) -> Any:
    if text is None or text == "":
        return None
    return json.loads(text)
