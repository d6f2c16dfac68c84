"""Talking to a running master over its control socket."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from .. import errors
from ..errors import BadInput, ExitCode, JobdError, MasterNotRunning, ProtocolError
from .protocol import MAX_LINE_BYTES, Request


def call(socket_path: Path, op: str, args: dict[str, Any] | None = None, *, timeout: float = 30.0) -> Any:
    """Send one request and return its result; raise the master's error as a JobdError."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(timeout)
    try:
        try:
            client.connect(str(socket_path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise MasterNotRunning(f"no master is running (nothing listens on {socket_path})") from None
        client.sendall(Request(op, args or {}).encode())
        reply = _read_line(client)
    finally:
        client.close()
    try:
        data = json.loads(reply)
    except ValueError:
        raise ProtocolError("the master sent a reply that is not JSON") from None
    if data.get("ok"):
        return data.get("result")
    raise _error_from_reply(data)


def _error_from_reply(data: dict[str, Any]) -> JobdError:
    """Re-create the master's error so the CLI maps it to the same exit code."""
    message, code = str(data.get("error")), int(data.get("code", 1))
    error_class = getattr(errors, str(data.get("kind")), None)
    if isinstance(error_class, type) and issubclass(error_class, JobdError) and error_class.__init__ is Exception.__init__:
        return error_class(message)
    if code == ExitCode.BAD_INPUT:
        return BadInput(message)
    return JobdError(message)


def is_running(socket_path: Path) -> bool:
    try:
        call(socket_path, "ping", timeout=5.0)
    except (MasterNotRunning, OSError):
        return False
    return True


def _read_line(client: socket.socket) -> bytes:
    chunks = []
    size = 0
    while True:
        chunk = client.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n"):
            break
        if size > MAX_LINE_BYTES * 64:
            raise ProtocolError("the master's reply is too large")
    if not chunks:
        raise MasterNotRunning("the master closed the connection without answering")
    return b"".join(chunks)
