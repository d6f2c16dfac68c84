"""Logging: workers log into the master's handlers; every job record carries its job id.

The master's own records go straight to its handlers. Each worker sends
its records on a pipe of its own, which one receiver thread in the master
reads and hands to the same handlers (``log_channels``): nothing is shared
between workers, so a worker killed in the middle of a record can lose only
that record, never the master's logging.

Every record says where it comes from: daemon, task, job id, attempt and
worker pid, as text (``log_format = "text"``) or one JSON object per line
(``"json"``, for log shippers). A record of a job is also captured for the
store (``jobd.observability.job_logs``) so ``jobd logs ID`` shows it without a grep.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import multiprocessing
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from multiprocessing.connection import Connection

from .. import defaults
from .log_channels import LogReceiver, ToMaster, install_receiver

if TYPE_CHECKING:
    from ..config import JobdConfig

FORMAT = "%(asctime)s %(levelname)s [%(processName)s:%(process)d] %(job_fields)s %(name)s: %(message)s"

current_job_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("jobd_job_id", default=None)


@dataclass(frozen=True)
class JobLogContext:
    """What every record logged while a job runs is stamped with."""

    daemon: str
    task: str
    job_id: int
    attempt: int


current_job: contextvars.ContextVar[JobLogContext | None] = contextvars.ContextVar("jobd_job", default=None)


@contextmanager
def job_logging_context(context: JobLogContext) -> Iterator[None]:
    """Stamp the records logged inside the block (in this process) with ``context``."""
    job_token = current_job.set(context)
    id_token = current_job_id.set(context.job_id)
    try:
        yield
    finally:
        current_job_id.reset(id_token)
        current_job.reset(job_token)


class JobIdFilter(logging.Filter):
    """Stamps ``job_id`` (and daemon, task, attempt) of the job being run in this process ("-" if none).

    Attributes already on the record win: a worker's record arrives in the
    master stamped, and the master passes ``extra={"job_id": …}`` when it
    logs about a job it supervises.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        context = current_job.get()
        if not hasattr(record, "job_id"):
            job_id = current_job_id.get()
            record.job_id = job_id if job_id is not None else "-"
        for name in ("daemon", "task", "attempt"):
            if not hasattr(record, name):
                setattr(record, name, getattr(context, name) if context and context.job_id == getattr(record, "job_id", None) else None)
        return True


def job_fields(record: logging.LogRecord) -> str:
    """``daemon=… task=… attempt=… job=…`` for a job's record; ``job=-`` for the rest."""
    parts = [
        f"{name}={getattr(record, name)}"
        for name in ("daemon", "task", "attempt")
        if getattr(record, name, None) is not None
    ]
    parts.append(f"job={getattr(record, 'job_id', '-')}")
    return " ".join(parts)


class TextFormatter(logging.Formatter):
    """The human format: one line per record (plus a traceback), job fields before the logger."""

    def __init__(self) -> None:
        super().__init__(FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        record.job_fields = job_fields(record)
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for journald, Loki, Elasticsearch and friends."""

    def format(self, record: logging.LogRecord) -> str:
        job_id = getattr(record, "job_id", "-")
        data: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.processName,
            "pid": record.process,
            "daemon": getattr(record, "daemon", None),
            "task": getattr(record, "task", None),
            "job_id": job_id if isinstance(job_id, int) else None,
            "attempt": getattr(record, "attempt", None),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["traceback"] = record.exc_text
        return json.dumps(data, ensure_ascii=False, default=str)


def make_formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure_master_logging(
    config: JobdConfig, *, to_stderr: bool, extra_handlers: list[logging.Handler] | None = None
) -> LogReceiver:
    """Set up the master's handlers and the receiver of its workers' records.

    ``extra_handlers`` (the job-log capture) receive every record too, from
    the master and its workers alike.
    """
    multiprocessing.set_start_method("forkserver", force=True)  # workers' pipes are pickled through it
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = []
    if config.log_file is not None:
        config.log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(config.log_file, encoding="utf-8"))
    if to_stderr or config.log_file is None:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(make_formatter(config.log_format))
    handlers += extra_handlers or []
    for handler in handlers:
        handler.addFilter(JobIdFilter())
        root.addHandler(handler)
    root.setLevel(config.log_level)
    receiver = LogReceiver(handlers, multiprocessing.get_context("forkserver"))
    install_receiver(receiver)
    return receiver


def configure_worker_logging(channel: Connection | None, level: str, max_line_bytes: int = defaults.MAX_LOG_LINE_BYTES) -> None:
    """A worker's records go to the master on its own pipe (``channel``), cut to ``max_line_bytes``; nowhere without one."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if channel is not None:
        handler = ToMaster(channel, max_line_bytes)
        handler.addFilter(JobIdFilter())
        root.addHandler(handler)
    root.setLevel(level)


def shutdown_logging() -> None:
    """Write the workers' last records (waiting a bounded time), then close the handlers."""
    receiver = install_receiver(None)
    if receiver is not None:
        receiver.stop()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
