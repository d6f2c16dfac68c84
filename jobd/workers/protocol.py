"""Messages between the master and its workers over ``multiprocessing`` pipes.

The pipes are internal and trusted, but messages are still plain,
versioned dicts (no pickled objects beyond builtins), so the two sides can
be read, logged and tested on their own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

PROTOCOL_VERSION = 1


@dataclass(frozen=True)
class RunJob:
    """master → worker: run this attempt of this job."""

    job_id: int
    attempt: int
    task: str
    args: dict[str, Any]
    checkpoint: Any
    type: str = "run"


@dataclass(frozen=True)
class StopWorker:
    """master → worker: finish nothing more; exit cleanly."""

    type: str = "stop"


@dataclass(frozen=True)
class WorkerReady:
    """worker → master: task code imported; ready for jobs."""

    pid: int
    type: str = "ready"


@dataclass(frozen=True)
class WorkerFailed:
    """worker → master: the worker cannot serve (e.g. task code failed to import)."""

    error: str
    type: str = "fatal"


@dataclass(frozen=True)
class ProgressReport:
    """worker → master: the latest progress of the running job."""

    job_id: int
    progress: dict[str, Any]
    type: str = "progress"


@dataclass(frozen=True)
class JobFinished:
    """worker → master: the attempt ended (succeeded, failed or cancelled)."""

    job_id: int
    attempt: int
    outcome: str  # "succeeded" | "failed" | "cancelled"
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    permanent: bool = False  # a failure no retry can fix (e.g. args that do not fit)
    duration: float = 0.0
    type: str = "finished"


Message = RunJob | StopWorker | WorkerReady | WorkerFailed | ProgressReport | JobFinished
_TYPES: dict[str, type] = {
    "run": RunJob,
    "stop": StopWorker,
    "ready": WorkerReady,
    "fatal": WorkerFailed,
    "progress": ProgressReport,
    "finished": JobFinished,
}


def encode(message: Message) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, **asdict(message)}


def decode(data: dict[str, Any]) -> Message:
    if data.get("v") != PROTOCOL_VERSION:
        raise ValueError(f"worker protocol version {data.get('v')!r} is not {PROTOCOL_VERSION}")
    fields = {key: value for key, value in data.items() if key != "v"}
    kind = _TYPES.get(str(fields.get("type")))
    if kind is None:
        raise ValueError(f"unknown worker message type {fields.get('type')!r}")
    message: Message = kind(**fields)
    return message
