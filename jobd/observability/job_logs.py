"""Capturing each job's own log lines for the store, without slowing the master.

A ``JobLogCapture`` is one more of the master's handlers: it sees every
record of the master and (through ``log_channels``) of every worker, keeps
those stamped with a job id, and hands them to the master loop, which writes
them in one batch per flush (``JobLogCapture.flush``). The handler runs in
the logging thread (the master's, or the receiver of workers' records) and
only appends to a bounded deque; the store is only touched from the loop.

Bounds, because a task that logs in a tight loop must not fill the store or
the master's memory: at most ``job_log_max_lines`` lines per job attempt
(one extra line announces the cut), each at most ``max_log_line_bytes``
(``jobd.output_caps``: a longer record is cut in the middle, text a store cannot
encode is escaped). A line the store refuses anyway is dropped with a
warning, never retried forever ahead of the others.
The full stream still goes to the log file or journald.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from typing import Any

from .. import defaults
from ..output_caps import truncate_text
from ..store.errors import describe, is_outage
from ..store.job_logs import JobLogLine, JobLogTable

log = logging.getLogger("jobd.joblogs")

_PENDING_LIMIT = 100_000  # lines waiting for the store (e.g. while it is down); older ones are dropped
_TRACKED_ATTEMPTS = 10_000  # per-attempt line counters kept (least recently used are forgotten)


class JobLogCapture(logging.Handler):
    """Collects job records (from any process) for the master to store."""

    def __init__(self, max_lines_per_attempt: int, max_line_bytes: int = defaults.MAX_LOG_LINE_BYTES) -> None:
        super().__init__()
        self.max_lines_per_attempt = max_lines_per_attempt
        self.max_line_bytes = max_line_bytes
        self._pending: deque[JobLogLine] = deque(maxlen=_PENDING_LIMIT)
        self._counts: OrderedDict[tuple[int, int | None], int] = OrderedDict()
        self._lock_counts = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        job_id = getattr(record, "job_id", None)
        if not isinstance(job_id, int) or self.max_lines_per_attempt <= 0:
            return
        attempt = getattr(record, "attempt", None)
        attempt = attempt if isinstance(attempt, int) else None
        if not self._admit(job_id, attempt):
            return
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            message = f"{message}\n{record.exc_text}"
        message = truncate_text(message, self.max_line_bytes, keep_tail=True)
        self._pending.append(
            JobLogLine(
                job_id=job_id, attempt=attempt, created_at=record.created, level=record.levelname,
                logger=record.name[: defaults.MAX_NAME_LENGTH], worker_pid=record.process, message=message,
            )
        )

    def _admit(self, job_id: int, attempt: int | None) -> bool:
        key = (job_id, attempt)
        with self._lock_counts:
            count = self._counts.pop(key, 0) + 1
            self._counts[key] = count
            while len(self._counts) > _TRACKED_ATTEMPTS:
                self._counts.popitem(last=False)
        if count == self.max_lines_per_attempt + 1:
            self._pending.append(
                JobLogLine(
                    job_id=job_id, attempt=attempt, created_at=time.time(), level="WARNING", logger="jobd.joblogs",
                    worker_pid=None, message=f"more than {self.max_lines_per_attempt} lines: the rest of this attempt's log is not kept here (see the log file)",
                )
            )
        return count <= self.max_lines_per_attempt

    def take(self) -> list[JobLogLine]:
        lines = []
        while True:
            try:
                lines.append(self._pending.popleft())
            except IndexError:
                return lines

    def flush_to(self, table: JobLogTable) -> int:
        """Write what was captured; on a store error put it back for the next flush. Returns lines written."""
        lines = self.take()
        if not lines:
            return 0
        try:
            table.append(lines)
        except Exception as error:
            if not is_outage(error):
                return self._append_one_by_one(table, lines)
            self._pending.extendleft(reversed(lines))
            raise
        return len(lines)

    def _append_one_by_one(self, table: JobLogTable, lines: list[JobLogLine]) -> int:
        """The store refused the batch for its data: keep every line it takes, drop those it refuses."""
        written = 0
        for index, line in enumerate(lines):
            try:
                table.append([line])
                written += 1
            except Exception as error:
                if is_outage(error):
                    self._pending.extendleft(reversed(lines[index:]))
                    raise
                log.warning("job %s: a log line was refused by the store and dropped: %s", line.job_id, describe(error)[:500])
        return written


def job_extra(job_id: int, attempt: int | None = None, **fields: Any) -> dict[str, Any]:
    """``extra=`` for a master record about a job, so it lands in that job's log."""
    return {"job_id": job_id, "attempt": attempt, **fields}
