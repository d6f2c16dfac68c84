"""The control socket faces untrusted clients: bad requests get an error or are dropped."""

from __future__ import annotations

import json
import os
import socket
import stat

import pytest

from jobd.control.protocol import MAX_LINE_BYTES, parse_request
from jobd.errors import ProtocolError
from support import Deployment


def exchange(path, payload: bytes, timeout: float = 15.0) -> bytes:  # type: ignore[no-untyped-def]
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(timeout)
    client.connect(str(path))
    try:
        client.sendall(payload)
        chunks = []
        while True:
            try:
                chunk = client.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                break
            if not chunk:
                break
            chunks.append(chunk)
            if chunk.endswith(b"\n"):
                break
        return b"".join(chunks)
    finally:
        client.close()


@pytest.mark.parametrize(
    "line, reason",
    [
        (b"hello\n", "not a JSON object"),
        (b"[1,2]\n", "must be a JSON object"),
        (b'{"v": 99, "op": "status"}\n', "unsupported protocol version"),
        (b'{"v": 1, "op": "DROP TABLE"}\n', "operation name"),
        (b'{"v": 1, "op": "status", "args": []}\n', "'args' must be a JSON object"),
        (b'{"v": 1, "op": "status", "extra": 1}\n', "unknown request fields"),
        (b"\xff\xfe\n", "not a JSON object"),
    ],
)
def test_malformed_requests_are_refused_by_the_parser(line: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        parse_request(line)


def test_garbage_oversized_and_half_written_requests_leave_the_master_serving(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.start_master()
    path = deployment.socket

    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o660, oct(mode)

    reply = json.loads(exchange(path, b"this is not json\n"))
    assert reply["ok"] is False and "JSON" in reply["error"]

    reply = json.loads(exchange(path, b'{"v": 1, "op": "format_disk"}\n'))
    assert reply["ok"] is False and "unknown operation 'format_disk'" in reply["error"]

    oversized = b'{"v": 1, "op": "status", "args": {"x": "' + b"a" * (MAX_LINE_BYTES + 10) + b'"}}\n'
    reply = json.loads(exchange(path, oversized))
    assert reply["ok"] is False and "larger than" in reply["error"]

    # Half-written: no newline, then silence. The master must not wait on it forever,
    # and must keep serving others meanwhile.
    dangling = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dangling.connect(str(path))
    dangling.sendall(b'{"v": 1, "op": "sta')
    try:
        reply = json.loads(exchange(path, b'{"v": 1, "op": "ping"}\n'))
        assert reply["ok"] is True
    finally:
        dangling.close()

    # Binary noise and an abrupt close.
    noisy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    noisy.connect(str(path))
    noisy.sendall(os.urandom(4096))
    noisy.close()

    reply = json.loads(exchange(path, b'{"v": 1, "op": "status"}\n'))
    assert reply["ok"] is True and "main" in reply["result"]["daemons"]


def test_several_requests_on_one_connection_are_answered_in_order(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.start_master()
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(10)
    client.connect(str(deployment.socket))
    client.sendall(b'{"v": 1, "op": "ping"}\n{"v": 1, "op": "nope"}\n')
    stream = client.makefile("rb")
    first, second = json.loads(stream.readline()), json.loads(stream.readline())
    client.close()
    assert first["ok"] is True and second["ok"] is False
