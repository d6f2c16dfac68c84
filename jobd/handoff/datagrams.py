"""The hand-off's datagrams: versioned, bounded, checked against a fixed format (pure, no I/O).

* ``wake/1 DAEMON``: a job of that daemon waits in the queue; claim now.
* ``wake/2 DAEMON PRIORITY``: the same for a job of that priority (sent when
  it is not 0): a master whose prefetch holds only lower ones claims it at
  once instead of after them (``jobd.master.dispatch``).
* ``run/1 DAEMON JOB_ID``: a job a submit claimed for the receiving master.
* ``run/2 DAEMON JOB_ID PRIORITY MAX_ATTEMPTS|- TASK ARGS_JSON``: the same with
  the job's content, taken as it is only from a trusted sender (``parse_handed``).

Datagrams come from outside the master, so anything that does not fit is
None here and ignored by the reader: a forged or garbled one costs at most
a claim query or a primary-key read.
"""

from __future__ import annotations

from .. import defaults
from ..names import NAME_PATTERN, TASK_NAME_PATTERN
from ..workers.protocol import HandedJob

WAKE_PREFIX = b"wake/1 "
PRIORITY_WAKE_PREFIX = b"wake/2 "
NAMED_PREFIX = b"run/1 "
DESCRIBED_PREFIX = b"run/2 "
MAX_DATAGRAM_BYTES = 128  # a wake-up or a run/1: a daemon name (at most 64 characters) and a job id fit
MAX_HANDED_JOB_BYTES = 8192  # a run/2; a job whose args are longer is handed over as a run/1
MAX_JOB_ID = defaults.MAX_ROW_ID
MIN_PRIORITY, MAX_PRIORITY = defaults.PRIORITY_RANGE  # the store's INTEGER column


def encode(daemon: str, priority: int = 0) -> bytes:
    """The wake-up for a job of ``daemon`` (``UnicodeEncodeError`` for a name no daemon has)."""
    if priority:
        return PRIORITY_WAKE_PREFIX + f"{daemon} {priority}".encode("ascii")
    return WAKE_PREFIX + daemon.encode("ascii")


def decode(datagram: bytes) -> tuple[str, int] | None:
    """The (daemon, priority) a wake-up names, or None if it is not a well-formed one."""
    if len(datagram) > MAX_DATAGRAM_BYTES:
        return None
    if datagram.startswith(WAKE_PREFIX):
        text, number = datagram[len(WAKE_PREFIX):], b"0"
    elif datagram.startswith(PRIORITY_WAKE_PREFIX):
        text, _, number = datagram[len(PRIORITY_WAKE_PREFIX):].partition(b" ")
    else:
        return None
    try:
        name = text.decode("ascii")
        priority = _signed_integer(number.decode("ascii"))
    except UnicodeDecodeError:
        return None
    if not NAME_PATTERN.fullmatch(name) or priority is None or not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        return None
    return name, priority


def encode_handed(daemon: str, job_id: int) -> bytes:
    return NAMED_PREFIX + f"{daemon} {job_id}".encode("ascii")


def decode_handed(datagram: bytes) -> tuple[str, int] | None:
    """The (daemon, job id) a run/1 names, or None if it is not a well-formed one."""
    if len(datagram) > MAX_DATAGRAM_BYTES or not datagram.startswith(NAMED_PREFIX):
        return None
    try:
        daemon, _, number = datagram[len(NAMED_PREFIX):].decode("ascii").partition(" ")
    except UnicodeDecodeError:
        return None
    job_id = _integer(number)
    if not NAME_PATTERN.fullmatch(daemon) or job_id is None or not 0 < job_id <= MAX_JOB_ID:
        return None
    return daemon, job_id


def encode_handed_job(job: HandedJob) -> bytes | None:
    """The run/2 for a described ``job``, or None if it would be too long (send a run/1)."""
    if not job.described:
        return None
    limit = "-" if job.max_attempts is None else str(job.max_attempts)
    datagram = DESCRIBED_PREFIX + f"{job.daemon} {job.job_id} {job.priority} {limit} {job.task} {job.args}".encode()
    return datagram if len(datagram) <= MAX_HANDED_JOB_BYTES else None


def decode_handed_job(datagram: bytes) -> HandedJob | None:
    """The job a run/2 describes, or None if it is not a well-formed one."""
    if len(datagram) > MAX_HANDED_JOB_BYTES or not datagram.startswith(DESCRIBED_PREFIX):
        return None
    try:
        fields = datagram[len(DESCRIBED_PREFIX):].decode().split(" ", 5)
    except UnicodeDecodeError:
        return None
    if len(fields) != 6:
        return None
    daemon, number, priority, limit, task, args = fields
    job_id, priority_value = _integer(number), _signed_integer(priority)
    max_attempts = None if limit == "-" else _integer(limit)
    if (
        not NAME_PATTERN.fullmatch(daemon) or not TASK_NAME_PATTERN.fullmatch(task)
        or job_id is None or not 0 < job_id <= MAX_JOB_ID or priority_value is None
        or (limit != "-" and max_attempts is None) or not args.startswith("{")
    ):
        return None
    return HandedJob(daemon, job_id, priority_value, max_attempts, task, args)


def parse_handed(datagram: bytes, trusted: bool) -> HandedJob | None:
    """The hand-off in ``datagram``, if it is one; its content kept only if the sender is ``trusted``.

    Anyone else is only believed about the job's id: the receiver reads the row.
    """
    if datagram.startswith(DESCRIBED_PREFIX):
        job = decode_handed_job(datagram)
        if job is None:
            return None
        return job if trusted else job.named_only()
    if datagram.startswith(NAMED_PREFIX):
        named = decode_handed(datagram)
        return HandedJob(*named) if named is not None else None
    return None


def _integer(text: str) -> int | None:
    """A decimal integer written plainly (no sign, no spaces, no leading zeros), or None."""
    if not text or not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0") or len(text) > 19:
        return None
    return int(text)


def _signed_integer(text: str) -> int | None:
    """``_integer`` with an optional leading minus sign."""
    value = _integer(text.removeprefix("-"))
    return None if value is None else (-value if text.startswith("-") else value)
