"""Logging: workers log into the master's handlers; every job record carries its job id.

The master wraps its handlers with ``multiprocessing-logging``'s
``MultiProcessingHandler``, whose receiving thread writes records that
workers put on its queue. Workers are started with the ``forkserver``
method (never a plain fork of the threaded master), so they do not inherit
the handler: each worker gets the handlers' queues and sends to them through
``ForwardToMaster`` — the same record formatting as the library, without a
second receiving thread.
"""

from __future__ import annotations

import contextvars
import logging
import multiprocessing
import sys
from typing import Any

from multiprocessing_logging import MultiProcessingHandler

from .config import JobdConfig

FORMAT = "%(asctime)s %(levelname)s [%(processName)s:%(process)d] job=%(job_id)s %(name)s: %(message)s"

current_job_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("jobd_job_id", default=None)


class JobIdFilter(logging.Filter):
    """Stamps ``record.job_id`` with the job being run in this process ("-" if none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "job_id"):
            job_id = current_job_id.get()
            record.job_id = job_id if job_id is not None else "-"
        return True


class ForwardToMaster(MultiProcessingHandler):
    """Worker end of the master's ``MultiProcessingHandler``: puts records on its queue."""

    def __init__(self, queue: Any) -> None:  # noqa: D107 - deliberately skips the parent's thread
        logging.Handler.__init__(self)
        self.queue = queue
        self._is_closed = False
        self.sub_handler = logging.NullHandler()

    def close(self) -> None:
        logging.Handler.close(self)


def configure_master_logging(config: JobdConfig, *, to_stderr: bool) -> list[Any]:
    """Set up the master's handlers; return the queues workers must forward to."""
    # The handlers' queues must be created in the workers' (forkserver) context
    # so they can be handed to them; the master itself never plain-forks.
    multiprocessing.set_start_method("forkserver", force=True)
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
    queues = []
    for index, handler in enumerate(handlers):
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(JobIdFilter())
        wrapped = MultiProcessingHandler(f"jobd-log-{index}", sub_handler=handler)
        wrapped.addFilter(JobIdFilter())
        root.addHandler(wrapped)
        queues.append(wrapped.queue)
    root.setLevel(config.log_level)
    return queues


def configure_worker_logging(queues: list[Any], level: str) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for queue in queues:
        handler = ForwardToMaster(queue)
        handler.addFilter(JobIdFilter())
        root.addHandler(handler)
    root.setLevel(level)


def shutdown_logging() -> None:
    """Flush the receiving threads so the last worker records are written."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
