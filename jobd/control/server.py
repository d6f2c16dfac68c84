"""The control socket server: reads untrusted requests, hands them to the master loop.

Each connection is served by its own thread, which only does socket work:
read a line (capped, with a deadline), parse it, put the request on the
master's inbox, wait for the answer, write it back. All state is touched by
the master loop alone, so no operation races with supervision.
"""

from __future__ import annotations

import logging
import queue
import socket
import socketserver
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from .. import defaults
from ..errors import ExitCode, JobdError, ProtocolError
from ..unix_sockets import born_private, prepare_path
from .protocol import MAX_LINE_BYTES, Request, error_reply, ok_reply, parse_request

log = logging.getLogger("jobd.control")


class Inbox:
    """Requests waiting for the master loop, and a way to wake it."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self.requests: queue.Queue[tuple[Request, Future[Any]]] = queue.Queue()
        self.wake = wake

    def submit(self, request: Request) -> Future[Any]:
        future: Future[Any] = Future()
        self.requests.put((request, future))
        self.wake()
        return future

    def drain(self) -> list[tuple[Request, Future[Any]]]:
        items = []
        while True:
            try:
                items.append(self.requests.get_nowait())
            except queue.Empty:
                return items


class _Handler(socketserver.StreamRequestHandler):
    server: "_Server"
    timeout = defaults.CONTROL_REQUEST_TIMEOUT_SECONDS

    def handle(self) -> None:
        while True:
            try:
                line = self.rfile.readline(MAX_LINE_BYTES + 1)
            except (TimeoutError, OSError):
                return  # a half-written request never completes: drop the connection
            if not line:
                return
            if len(line) > MAX_LINE_BYTES:
                self._write(error_reply(f"request larger than {MAX_LINE_BYTES} bytes", ExitCode.BAD_INPUT))
                return
            if not line.endswith(b"\n"):
                self._write(error_reply("request must end with a newline", ExitCode.BAD_INPUT))
                return
            if not line.strip():
                continue
            self._write(self._answer(line))

    def _answer(self, line: bytes) -> bytes:
        try:
            request = parse_request(line)
        except ProtocolError as error:
            return error_reply(str(error), ExitCode.BAD_INPUT, "ProtocolError")
        future = self.server.inbox.submit(request)
        try:
            result = future.result(timeout=defaults.CONTROL_REQUEST_TIMEOUT_SECONDS * 3)
        except JobdError as error:
            return error_reply(str(error), int(error.exit_code), type(error).__name__)
        except Exception as error:  # never let one request kill the server
            log.exception("control request %s failed", request.op)
            return error_reply(f"internal error: {error}", ExitCode.FAILURE)
        return ok_reply(result)

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            pass


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = False
    # socketserver's default listen backlog is 5: a burst of clients (an app's
    # web workers submitting at once) was refused with ECONNREFUSED.
    request_queue_size = defaults.CONTROL_LISTEN_BACKLOG
    inbox: Inbox


class ControlServer:
    """A Unix socket at ``path`` (mode 0660) serving JSON-line requests."""

    def __init__(self, path: Path, inbox: Inbox) -> None:
        self.path = path
        self.inbox = inbox
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        prepare_path(self.path, socket.SOCK_STREAM, f"a master already listens on {self.path}")
        with born_private(self.path):
            server = _Server(str(self.path), _Handler)
        server.inbox = self.inbox
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="jobd-control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
