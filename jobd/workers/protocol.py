"""Messages between the master and its workers over ``multiprocessing`` pipes.

The pipes are internal and trusted, but messages are still plain data:
each message is a tuple ``(type, *fields)`` of builtins, and a *frame* (one
write on the pipe) carries a protocol version and a list of messages. So
the two sides can be read, logged and tested on their own, and a burst
costs one write and one read however many messages it holds: the master
hands a worker several short jobs in one frame, and reads every worker's
finished jobs with one read per wake-up (see ``FrameReader``).
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..job import Job

PROTOCOL_VERSION = 2
READ_CHUNK_BYTES = 1 << 16
#: master → busy worker, besides the pipe: its running task sees ``ctx.stopping``. A signal, not a
#: message, because a worker reads its pipe only between jobs; SIGUSR1 is the running job's cancel.
STOPPING_SIGNAL = signal.SIGUSR2


@dataclass(frozen=True)
class RunJob:
    """master → worker: run this attempt of this job (after the ones already sent, unless it is more urgent)."""

    job_id: int
    attempt: int
    task: str
    args: dict[str, Any]
    checkpoint: Any
    batch_id: int | None = None  # its batch, which the task may add members to (``ctx.batch``)
    priority: int = 0  # a job sent later with a higher priority starts before those waiting in the worker
    type: str = "run"

    @classmethod
    def of(cls, job: Job) -> RunJob:
        """The message that runs ``job``, as claimed (its attempt counted)."""
        return cls(job.id, job.attempts, job.task, job.args, job.checkpoint, job.batch_id, job.priority)


@dataclass(frozen=True)
class JobJumpedAhead:
    """worker → master: this job starts now, before jobs handed earlier (it is more urgent than they are)."""

    job_id: int
    type: str = "jumped"


@dataclass(frozen=True)
class CancelJob:
    """master → worker: if this job has not started yet, do not start it; report it cancelled."""

    job_id: int
    type: str = "cancel"


@dataclass(frozen=True)
class StopWorker:
    """master → worker: finish the running job, start none of those waiting; exit cleanly."""

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
    """worker → master: the attempt ended (succeeded, failed or cancelled); the next one starts now."""

    job_id: int
    attempt: int
    outcome: str  # "succeeded" | "failed" | "cancelled" | "returned" (yielded to a stop: back to the queue)
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    permanent: bool = False  # a failure no retry can fix (e.g. args that do not fit)
    duration: float = 0.0
    type: str = "finished"


@dataclass(frozen=True)
class HandedJob:
    """A job a submit inserted already claimed for a master (running, attempt 1) and handed over by datagram.

    The one shape of a handed job (``jobd.handoff``): what a ``run`` datagram
    names or describes, what the master confirms against the store, and, as
    a message (worker → master), a job a worker took straight from a submit
    and starts now. Without ``task`` only its id is known (a ``run/1``, or a
    sender not trusted with the content): whoever receives it reads the row.
    """

    daemon: str
    job_id: int
    priority: int = 0
    max_attempts: int | None = None
    task: str | None = None
    args: str | None = None  # as stored: canonical JSON
    type: str = "took"

    @property
    def described(self) -> bool:
        """Whether the content came along (a trusted ``run/2``), so the job can start without reading its row."""
        return self.task is not None and self.args is not None

    def named_only(self) -> HandedJob:
        """The same hand-off believed for its id alone (the sender is not trusted with the content)."""
        return HandedJob(self.daemon, self.job_id)


@dataclass(frozen=True)
class PassedHandoff:
    """worker → master: a hand-off datagram this worker could not run at once; the master takes it."""

    datagram: bytes
    trusted: bool  # the kernel said its sender was root or the worker's own user
    type: str = "passed"


Message = (
    RunJob | CancelJob | StopWorker | WorkerReady | WorkerFailed | ProgressReport | JobFinished | HandedJob | PassedHandoff
    | JobJumpedAhead
)
_KINDS: tuple[type, ...] = (
    RunJob, CancelJob, StopWorker, WorkerReady, WorkerFailed, ProgressReport, JobFinished, HandedJob, PassedHandoff,
    JobJumpedAhead,
)
# type name → (class, the names of its fields in order, without "type")
_TYPES: dict[str, tuple[type, tuple[str, ...]]] = {
    kind.type: (kind, tuple(f.name for f in fields(kind) if f.name != "type")) for kind in _KINDS  # type: ignore[attr-defined]
}


def encode(messages: Iterable[Message]) -> bytes:
    """One frame holding ``messages`` in order."""
    return pickle.dumps(
        (PROTOCOL_VERSION, [(m.type, *(getattr(m, name) for name in _TYPES[m.type][1])) for m in messages]),
        protocol=pickle.HIGHEST_PROTOCOL,
    )


_LENGTH = struct.Struct("!i")
_HUGE_LENGTH = struct.Struct("!iQ")


def send(fd: int, messages: Iterable[Message]) -> None:
    """Write one frame holding ``messages`` on a pipe, in ``Connection.send_bytes``'s framing.

    One ``write`` of the header and the frame together: ``send_bytes`` costs
    several Python calls and, for small frames, is what a worker spends
    most of its per-job overhead on after the task itself. OSError if the
    other end is gone.
    """
    send_frame(fd, encode(messages))


def send_frame(fd: int, frame: bytes) -> None:
    """Write one frame ``encode`` made (see ``send``); OSError if the other end is gone."""
    header = _LENGTH.pack(len(frame)) if len(frame) <= 0x7FFFFFFF else _HUGE_LENGTH.pack(-1, len(frame))
    data = memoryview(header + frame)
    while data:
        data = data[os.write(fd, data):]


def decode(frame: bytes) -> list[Message]:
    """The messages of one frame; ValueError if it is not a frame of this protocol."""
    try:
        version, items = pickle.loads(frame)
    except Exception as error:
        raise ValueError(f"unreadable worker frame: {error}") from None
    if version != PROTOCOL_VERSION:
        raise ValueError(f"worker protocol version {version!r} is not {PROTOCOL_VERSION}")
    messages: list[Message] = []
    for item in items:
        known = _TYPES.get(item[0]) if isinstance(item, tuple) and item else None
        if known is None:
            raise ValueError(f"unknown worker message {item!r:.80}")
        messages.append(known[0](*item[1:]))
    return messages


class FrameReader:
    """Reads whole frames off a ``multiprocessing`` connection's file descriptor, many per read.

    ``Connection.recv`` costs two system calls and a wake-up per message; at
    thousands of jobs a second the master instead reads what is there in one
    call and splits it by the connection's own framing (a 4-byte big-endian
    length, or -1 and an 8-byte length for huge frames), which ``send``
    writes too.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()

    def read(self) -> list[bytes]:
        """The complete frames available now (reads once; call when the fd is readable).

        Raises EOFError when the other end closed and no frame is left.
        """
        chunk = os.read(self.fd, READ_CHUNK_BYTES)
        if not chunk:
            raise EOFError("worker pipe closed")
        self.buffer += chunk
        frames = []
        buffer = self.buffer
        offset = 0
        while True:
            if len(buffer) - offset < 4:
                break
            (size,) = struct.unpack_from("!i", buffer, offset)
            header = 4
            if size == -1:
                if len(buffer) - offset < 12:
                    break
                (size,) = struct.unpack_from("!Q", buffer, offset + 4)
                header = 12
            end = offset + header + size
            if len(buffer) < end:
                break
            frames.append(bytes(buffer[offset + header : end]))
            offset = end
        del buffer[:offset]
        return frames
