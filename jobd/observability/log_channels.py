"""Each worker's log records reach the master on a pipe of its own.

Workers used to forward records through one ``multiprocessing`` queue
shared by all of them. Its write lock lives in shared memory: a worker
killed while it held the lock (a timeout's SIGTERM in the middle of a
record, a segfault, ``os._exit`` with a record in flight, an operator's
``kill -9``) left it held for good, and from then on no record of any
process reached the log file or stderr, records piled up in memory, and
the master's exit waited forever on the queue's feeder thread.

Here nothing is shared between writers. The master opens one pipe per
worker (``LogReceiver.open_channel``), keeps the read end and gives the
write end to that worker only. A worker writes length-prefixed JSON frames
(``encode_record``); one receiver thread in the master reads every pipe
(``FrameSplitter``) and hands the records to the master's handlers. A
writer killed mid-frame can at worst lose its own partial record: at
end-of-file the unfinished frame is dropped and the pipe is closed. The
receiver is a daemon thread that ``stop`` joins with a deadline, so the
master's exit never waits on it.

JSON, not pickle: a record is plain data, and a corrupted frame must never
run code in the master. A worker's pipe whose stream makes no sense (a
length past ``MAX_FRAME_BYTES``, a frame that is not a JSON object) is
closed; its worker's later records are lost, the others' are not.

One limit: a task that forks without exec shares its worker's pipe, and
records over ``PIPE_BUF`` (4 KiB) written by both at once can interleave;
that pipe is then closed as corrupt. Children started with exec
(``subprocess``) do not inherit it.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from typing import Any

from .. import defaults
from ..output_caps import cap_log_line

_HEADER = struct.Struct("!I")
MAX_FRAME_BYTES = defaults.LOG_FRAME_MAX_BYTES
_READ_CHUNK = 256 * 1024


class CorruptStream(ValueError):
    """A log pipe's bytes are not a sequence of frames."""


def encode_record(record: logging.LogRecord, formatter: logging.Formatter | None = None) -> bytes:
    """One frame for ``record``: its message merged, its traceback as text, every value plain data.

    The same preparation as ``logging.handlers.QueueHandler.prepare``: the
    receiving side cannot format arguments or tracebacks that only exist in
    the worker. A record too big for a frame keeps its head and says so.
    """
    fields = dict(record.__dict__)
    fields["msg"] = record.getMessage()
    fields["args"] = None
    if record.exc_info:
        fields["exc_text"] = record.exc_text or (formatter or logging.Formatter()).formatException(record.exc_info)
    fields["exc_info"] = None
    fields.pop("message", None)
    payload = json.dumps(fields, default=str).encode()
    if len(payload) > MAX_FRAME_BYTES:
        size = len(payload)
        keep = MAX_FRAME_BYTES // 8
        fields = {
            key: (value[:keep] + f" …[cut: the record was {size:,} bytes]" if isinstance(value, str) and len(value) > keep else value)
            for key, value in fields.items()
            if isinstance(value, (str, int, float, bool, type(None)))
        }
        payload = json.dumps(fields).encode()
    if len(payload) > MAX_FRAME_BYTES:  # many huge extra fields: say so rather than break the stream
        note = {key: fields.get(key) for key in ("name", "levelno", "levelname", "created", "process", "processName", "job_id")}
        payload = json.dumps({**note, "msg": f"a log record of {size:,} bytes was dropped"}).encode()
    return _HEADER.pack(len(payload)) + payload


def decode_record(payload: bytes) -> logging.LogRecord:
    fields = json.loads(payload)
    if not isinstance(fields, dict):
        raise CorruptStream("a log frame is not a JSON object")
    return logging.makeLogRecord(fields)


class FrameSplitter:
    """Cuts one pipe's byte stream into frames; keeps an unfinished frame for the next read."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The complete frames ``data`` finished; raises CorruptStream on an impossible length."""
        self._buffer += data
        while len(self._buffer) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self._buffer)
            if length > MAX_FRAME_BYTES:
                raise CorruptStream(f"a log frame of {length} bytes")
            end = _HEADER.size + length
            if len(self._buffer) < end:
                return
            payload = bytes(self._buffer[_HEADER.size:end])
            del self._buffer[:end]
            yield payload

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame (dropped if the writer is gone)."""
        return len(self._buffer)


class ToMaster(logging.Handler):
    """A worker's only log handler: writes each record as one frame on the worker's own pipe.

    A record is cut to ``max_line_bytes`` here (``jobd.output_caps``): a task
    logging a megabyte sends the master a few kilobytes.
    """

    def __init__(self, channel: Connection, max_line_bytes: int = defaults.MAX_LOG_LINE_BYTES) -> None:
        super().__init__()
        self.channel = channel
        self.fd = channel.fileno()
        self.max_line_bytes = max_line_bytes
        self.broken = False

    def emit(self, record: logging.LogRecord) -> None:
        if self.broken:
            return
        try:
            frame = memoryview(encode_record(self._capped(record), self.formatter))
            while frame:  # handle() holds this handler's lock: frames of two threads never interleave
                written = os.write(self.fd, frame)
                frame = frame[written:]
        except OSError:
            self.broken = True  # the master is gone: the worker ends with it; nothing to report to
        except Exception:
            self.handleError(record)

    def _capped(self, record: logging.LogRecord) -> logging.LogRecord:
        """``record`` with its message, traceback and stack cut to ``max_line_bytes`` (a copy if anything was cut)."""
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = (self.formatter or logging.Formatter()).formatException(record.exc_info)
        texts = {"msg": message, "exc_text": record.exc_text, "stack_info": record.stack_info}
        capped = {name: cap_log_line(text, self.max_line_bytes) if text else text for name, text in texts.items()}
        if all(capped[name] is texts[name] for name in texts):
            return record
        copy = logging.makeLogRecord(record.__dict__)
        copy.msg, copy.args, copy.exc_info = capped["msg"], None, None
        copy.exc_text, copy.stack_info = capped["exc_text"], capped["stack_info"]
        return copy


class LogReceiver:
    """The master's end: one thread reads every worker's pipe and passes records to ``handlers``."""

    def __init__(self, handlers: Sequence[logging.Handler], context: Any) -> None:
        self.handlers = list(handlers)
        self.context = context  # the multiprocessing context workers start from (their pipe ends are pickled through it)
        self._selector = selectors.DefaultSelector()
        self._streams: dict[int, tuple[Connection, FrameSplitter]] = {}
        self._lock = threading.Lock()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        self._registered: set[int] = set()
        self._drain_seconds = defaults.LOG_RECEIVER_STOP_SECONDS / 2
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="jobd-log-receiver", daemon=True)
        self._thread.start()

    def open_channel(self) -> Connection:
        """A new worker's write end; the master keeps the read end. Close the returned end once the worker has it."""
        reader, writer = self.context.Pipe(duplex=False)
        os.set_blocking(reader.fileno(), False)
        with self._lock:
            self._streams[reader.fileno()] = (reader, FrameSplitter())
        self._wake()  # the thread re-registers its pipes
        return writer

    @property
    def open_channels(self) -> int:
        with self._lock:
            return len(self._streams)

    def _wake(self) -> None:
        try:
            os.write(self._wake_write, b"x")
        except (BlockingIOError, OSError):
            pass  # already woken, or stopped

    def _run(self) -> None:
        while not self._stopping:
            try:
                self._turn()
            except Exception:  # never die: workers would block on full pipes
                logging.getLogger("jobd.logs").exception("the receiver of workers' log records failed; going on")
                time.sleep(0.1)
        self._drain(time.monotonic() + self._drain_seconds)

    def _turn(self) -> None:
        self._follow()
        for key, _events in self._selector.select():
            if key.fd == self._wake_read:
                self._clear_wake()
            else:
                self._read(key.fd)

    def _follow(self) -> None:
        """Watch the pipes opened since the last turn (only this thread registers and closes them)."""
        with self._lock:
            current = set(self._streams)
        for fd in current - self._registered:
            self._selector.register(fd, selectors.EVENT_READ)
        self._registered = current

    def _clear_wake(self) -> None:
        try:
            os.read(self._wake_read, 4096)
        except BlockingIOError:
            pass

    def _read(self, fd: int) -> int:
        """Pass on what ``fd`` holds now; the bytes read (0: none, or it was closed: writer gone, stream corrupt)."""
        with self._lock:
            stream = self._streams.get(fd)
        if stream is None:
            return 0
        try:
            data = os.read(fd, _READ_CHUNK)
        except BlockingIOError:
            return 0
        except OSError:
            data = b""
        if not data:
            self._close(fd)  # an unfinished frame of a killed writer goes with it
            return 0
        try:
            for payload in stream[1].feed(data):
                self._dispatch(decode_record(payload))
        except ValueError:  # CorruptStream, or a frame that is not JSON
            logging.getLogger("jobd.logs").error("a worker's log stream is corrupt; its further records are dropped")
            self._close(fd)
            return 0
        return len(data)

    def _dispatch(self, record: logging.LogRecord) -> None:
        for handler in self.handlers:
            if record.levelno >= handler.level:
                try:
                    handler.handle(record)
                except Exception:  # a handler's own failure must not end the receiver
                    handler.handleError(record)

    def _close(self, fd: int) -> None:
        with self._lock:
            stream = self._streams.pop(fd, None)
        if fd in self._registered:
            self._selector.unregister(fd)
            self._registered.discard(fd)
        if stream is not None:
            stream[0].close()

    def _drain(self, deadline: float) -> None:
        """At stop: what the pipes already hold, without waiting for more and never past ``deadline``."""
        for fd in list(self._registered):
            while time.monotonic() < deadline and self._read(fd):
                pass

    def stop(self, timeout: float = defaults.LOG_RECEIVER_STOP_SECONDS) -> None:
        """Pass on what the pipes hold, then stop; never waits longer than ``timeout``."""
        self._stopping = True
        self._wake()
        self._thread.join(timeout)
        if self._thread.is_alive():
            return  # stuck in a handler (a blocked stderr?): a daemon thread, left behind
        with self._lock:
            streams = list(self._streams.values())
            self._streams.clear()
        for connection, _splitter in streams:
            connection.close()
        self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)


_receiver: LogReceiver | None = None


def install_receiver(receiver: LogReceiver | None) -> LogReceiver | None:
    """Make ``receiver`` the one new workers get pipes from; return the previous one."""
    global _receiver
    previous, _receiver = _receiver, receiver
    return previous


def open_worker_channel() -> Connection | None:
    """A pipe for a new worker's records, or None when the master's logging is not set up (then the worker logs nowhere)."""
    return _receiver.open_channel() if _receiver is not None else None
