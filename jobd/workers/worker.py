"""A worker: a long-running child process that imports task code once and runs many jobs.

The loop is: take the next ``RunJob`` (the master may have sent several
ahead) → run the task with its ``ctx`` → send ``JobFinished``. Everything a
task can do wrong (raise, return something that is not JSON, ignore args)
becomes a failed outcome; only a crash of the process itself is left to the
master to notice. A worker dies with its master, whatever kills it (the
lifeline, ``lifeline.py``, with ``PR_SET_PDEATHSIG`` behind it), and takes
what its task started along (it leads its own session), so a ``kill -9`` of
the master never leaves orphans finishing jobs that a restarted master runs
again.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import select
import signal
import time
import traceback
from collections import deque
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from ..activity.progress import JobProgress
from ..batch_member import MemberBatch
from ..output_caps import DEFAULT_CAPS, OutputCaps, OutputRejected, cap_error, cap_traceback, encode_checkpoint, encode_result
from ..context import Cancelled, StopEarly, TaskContext
from ..cpu_policy import worker_runs_normally
from ..errors import ConfigError, InvalidArgs, PermanentFailure, TaskFailed
from ..job import encode_json
from ..observability.logs import JobLogContext, configure_worker_logging, job_logging_context
from ..store.driver_sql import WorkerStatements
from ..tasks import TaskDefinition
from ..trailing import process_flusher
from . import lifeline as lifelines, protocol
from ..handoff.channel import Channel
from ..handoff.worker_side import WorkerEnd, handoff_guard
from .fence import Ledger, ledger_path
from .settings import WorkerSettings, load_tasks

if TYPE_CHECKING:
    from ..activity.memcached import MemcachedActivity

log = logging.getLogger("jobd.worker")

EXIT_TASK_CODE_FAILED = 3
PR_SET_PDEATHSIG = 1


class _SignalFlag:
    """Set by a signal from the master: SIGUSR1 → ``ctx.cancelled`` (per job), SIGUSR2 → ``ctx.stopping`` (for good).

    The handler only records; the task reads the flag when it looks.
    """

    def __init__(self) -> None:
        self.is_set = False

    def on_signal(self, _signum: int, _frame: Any) -> None:
        self.is_set = True


class _PipeProgress:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def report(self, job_id: int, progress: dict[str, Any]) -> None:
        _send(self.connection, protocol.ProgressReport(job_id, progress))


class _StoreCheckpoints:
    """Checkpoints go straight to the store: durable when ``ctx.checkpoint`` returns.

    One over ``max_checkpoint_bytes`` or that is not JSON raises
    ``OutputRejected`` in the task, saying why, and is not written.
    """

    def __init__(self, statements: WorkerStatements, caps: OutputCaps = DEFAULT_CAPS) -> None:
        self.statements = statements
        self.caps = caps

    def save(self, job_id: int, attempt: int, state: Any) -> bool:
        text = encode_checkpoint(state, self.caps)
        if not text.isascii():
            state = json.loads(text)  # the value as it will be stored (lone surrogates escaped)
        return self.statements.save_checkpoint(job_id, attempt, encode_json(state), time.time())


def _shared_activity(settings: WorkerSettings) -> MemcachedActivity | None:
    """The deployment's memcached activity store, or None when no memcached is configured."""
    if not settings.memcached:
        return None
    from ..activity.memcached import MemcachedActivity, namespace_for  # pymemcache only where it is used

    return MemcachedActivity(list(settings.memcached), namespace_for(settings.store_url))


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass  # not Linux: the pipe EOF still ends the worker between jobs


def worker_main(
    settings: WorkerSettings, connection: Connection, channel: Channel | None = None, lifeline: Connection | None = None,
) -> None:
    """Entry point of a worker process (runs in the child)."""
    if settings.normal_cpu_policy:
        worker_runs_normally()  # not the master's SCHED_BATCH, which the fork server passed on
    os.setsid()  # its own session and process group: everything its tasks start can be found and killed with it
    if lifeline is not None:
        lifelines.watch(lifeline)
    lifelines.detach_from_fork_server()
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the master, which drains
    cancel, stopping = _SignalFlag(), _SignalFlag()
    signal.signal(signal.SIGUSR1, cancel.on_signal)
    signal.signal(protocol.STOPPING_SIGNAL, stopping.on_signal)  # installed before WorkerReady: the master signals only ready workers
    caps = settings.caps
    configure_worker_logging(settings.log_channel, settings.log_level, caps.log_line_bytes)
    if settings.problem is not None:
        _send(connection, protocol.WorkerFailed(settings.problem))
        os._exit(EXIT_TASK_CODE_FAILED)
    try:
        tasks = load_tasks(settings)
    except ConfigError as error:
        _send(connection, protocol.WorkerFailed(str(error)))
        os._exit(EXIT_TASK_CODE_FAILED)
    progress = JobProgress(_PipeProgress(connection), _shared_activity(settings), settings.daemon, caps)
    statements = WorkerStatements(settings.store)
    checkpoints = _StoreCheckpoints(statements, caps)
    _send(connection, protocol.WorkerReady(os.getpid()))
    guard = handoff_guard(settings, statements)
    direct = WorkerEnd(channel, settings.daemon, lambda message: _send(connection, message), guard) if channel else None
    inbox = _Inbox(connection, direct)
    ledger = Ledger(ledger_path(settings.socket, os.getpid()))  # which jobs really began, for the next master
    while (message := inbox.next_job()) is not None:
        if message.job_id in inbox.cancelled:
            inbox.cancelled.discard(message.job_id)
            _send(connection, protocol.JobFinished(message.job_id, message.attempt, "cancelled", error="cancelled by an operator"))
            continue
        cancel.is_set = False
        if inbox.jumped:
            _send(connection, protocol.JobJumpedAhead(message.job_id))  # before the master reads it as the running one
        ledger.began(message.job_id, message.attempt)
        progress.job_started(message.job_id, message.task, message.attempt)
        finished = run_job(message, tasks, settings.daemon, progress, checkpoints, cancel, caps, stopping, settings.source)
        progress.job_ended(message.job_id)
        inbox.cancelled.discard(message.job_id)  # a cancel that came too late
        _send(connection, finished)
        if direct is not None:  # only now: the master must not write to us while we write a large result
            direct.done()
    logging.shutdown()


def batch_of(message: protocol.RunJob, config_source: str | None) -> MemberBatch | None:
    """``ctx.batch`` for a member of a batch (it may add members to it), else None."""
    if message.batch_id is None or config_source is None:
        return None
    return MemberBatch(message.batch_id, message.job_id, config_source)


def _send(connection: Connection, message: protocol.Message) -> None:
    protocol.send(connection.fileno(), [message])


class _Inbox:
    """The jobs the master has handed this worker, in order, and what it said about them since.

    The master may send several short jobs ahead (see ``Pool.depth``), so the
    worker never waits for a round trip between them. Before starting each
    one it reads whatever else arrived: a cancel for a job still waiting here,
    or a stop, which leaves every waiting job unstarted (the master hands them
    back to the queue when this process exits). With nothing to run, it also
    waits on its own hand-off socket (``jobd.handoff``): a submit's job starts
    from there without passing through the master.
    """

    def __init__(self, connection: Connection, direct: WorkerEnd | None = None) -> None:
        self.connection = connection
        self.reader = protocol.FrameReader(connection.fileno())  # all that arrived, in one read
        self.waiting: deque[protocol.RunJob] = deque()
        self.mixed = False  # jobs of different priorities wait: the next one is looked for, not just taken
        self.jumped = False  # the last job taken was not the first handed (the master is told)
        self.cancelled: set[int] = set()
        self.stopping = False
        self.direct = direct
        self.pipe = select.poll()  # registered once: Connection.poll builds a selector on every call
        self.pipe.register(self.reader.fd, select.POLLIN)
        self.poller = select.poll()
        self.poller.register(self.reader.fd, select.POLLIN)
        if direct is not None:
            self.poller.register(direct.fileno(), select.POLLIN)

    def next_job(self) -> protocol.RunJob | None:
        """The next job to run, or None: stop (told to, or the master is gone)."""
        try:
            while not self.stopping and (not self.waiting or self.pipe.poll(0)):
                if not self.waiting and self.direct is not None and not self._master_wrote():
                    handed = self.direct.take()
                    if handed is not None:
                        return handed
                    continue
                for frame in self.reader.read():
                    self._take(protocol.decode(frame))
        except (EOFError, OSError):
            return None  # the master is gone
        if self.stopping:
            return None
        return self._most_urgent()

    def _most_urgent(self) -> protocol.RunJob:
        """The first of the waiting jobs with the highest priority (usually simply the first)."""
        self.jumped = False
        if not self.mixed:
            return self.waiting.popleft()
        waiting = self.waiting
        best = max(range(len(waiting)), key=lambda index: (waiting[index].priority, -index))
        job = waiting[best]
        del waiting[best]
        self.jumped = best > 0
        self.mixed = len({other.priority for other in waiting}) > 1
        return job

    def _master_wrote(self) -> bool:
        """Wait for the master or a submit; True if the master wrote (it goes first), False for the socket."""
        ready = self.poller.poll()
        return any(fd == self.reader.fd for fd, _events in ready)

    def _take(self, messages: list[protocol.Message]) -> None:
        for message in messages:
            if isinstance(message, protocol.RunJob):
                self.mixed = self.mixed or bool(self.waiting and message.priority != self.waiting[0].priority)
                self.waiting.append(message)
            elif isinstance(message, protocol.CancelJob):
                self.cancelled.add(message.job_id)
            elif isinstance(message, protocol.StopWorker):
                self.stopping = True


def run_job(
    message: protocol.RunJob,
    tasks: dict[str, TaskDefinition],
    daemon: str,
    progress: Any,
    checkpoints: Any,
    cancel: _SignalFlag,
    caps: OutputCaps = DEFAULT_CAPS,
    stopping: _SignalFlag | None = None,
    config_source: str | None = None,
) -> protocol.JobFinished:
    """Run one attempt and describe how it ended; never raises.

    What the task produced is capped before it is sent (``jobd.output_caps``): the
    pipe never carries more than the store would keep.
    """
    started = time.monotonic()
    # Entered by hand and left in the ``finally`` below, so the body keeps its
    # indentation (a smaller diff for the other branches editing run_job).
    logging_context = job_logging_context(JobLogContext(daemon, message.task, message.job_id, message.attempt))
    logging_context.__enter__()
    ctx: TaskContext | None = None

    def finished(outcome: str, *, error: str | None = None, traceback: str | None = None, **details: Any) -> protocol.JobFinished:
        return protocol.JobFinished(
            job_id=message.job_id, attempt=message.attempt, outcome=outcome,
            duration=time.monotonic() - started,
            error=cap_error(error, caps), traceback=cap_traceback(traceback, caps), **details,
        )

    try:
        definition = tasks.get(message.task)
        if definition is None:
            return finished("failed", error=f"daemon {daemon!r} has no task {message.task!r}", permanent=True)
        try:
            definition.check_args(message.args)
        except InvalidArgs as error:
            return finished("failed", error=str(error), permanent=True)
        ctx = TaskContext(
            job_id=message.job_id, attempt=message.attempt, daemon=daemon, task=message.task,
            last_checkpoint=message.checkpoint, progress_sink=progress, checkpoint_sink=checkpoints,
            is_cancelled=lambda: cancel.is_set, is_stopping=lambda: stopping is not None and stopping.is_set,
            flusher=process_flusher(), batch=batch_of(message, config_source),
        )
        log.info("job %s attempt %s: %s started", message.job_id, message.attempt, message.task)
        try:
            result = definition.function(ctx, **message.args)
        except Cancelled as error:
            log.info("job %s cancelled: %s", message.job_id, error)
            return finished("cancelled", error=str(error))
        except StopEarly:
            log.info("job %s yielded to the stop of its worker; it goes back to the queue", message.job_id)
            return finished("returned")  # like a drain's return: back to the queue, attempt given back
        except PermanentFailure as error:
            log.error("job %s failed for good: %s", message.job_id, error)
            return finished("failed", error=str(error), permanent=True)
        except TaskFailed as error:  # the message says it all (a shell command's exit code and output)
            log.error("job %s failed: %s", message.job_id, error)
            return finished("failed", error=str(error))
        except BaseException as error:  # a task's failure, whatever it is, is the job's failure
            # KeyboardInterrupt and SystemExit included: a worker ignores SIGINT and leads its own
            # session, so only the task's own code raises them, and the worker serves the next job.
            error_line = cap_error(traceback.format_exception_only(error)[-1].strip(), caps)
            log.error("job %s failed: %s", message.job_id, error_line, exc_info=True)
            return finished("failed", error=error_line, traceback=traceback.format_exc())
        try:
            if result is not None:
                encode_result(result, caps)
        except OutputRejected as error:
            log.error("job %s failed: %s", message.job_id, error)
            return finished("failed", error=str(error))
        if cancel.is_set:
            return finished("cancelled", error="cancelled by an operator", result=result)
        log.info("job %s succeeded in %.3fs", message.job_id, time.monotonic() - started)
        return finished("succeeded", result=result)
    finally:
        if ctx is not None:
            ctx.close()  # a held-back progress report must not follow the JobFinished
        logging_context.__exit__(None, None, None)
