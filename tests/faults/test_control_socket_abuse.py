"""The control socket under abuse: deeply nested JSON gets an error reply, bursts of clients all get in."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

from jobd.control import client
from jobd.control.protocol import MAX_LINE_BYTES

from support import Deployment

CLIENTS = 50
CALLS_PER_CLIENT = 10


def _reply(connection: socket.socket) -> dict[str, Any]:
    buffer = b""
    while not buffer.endswith(b"\n"):
        chunk = connection.recv(65536)
        assert chunk, "the master closed the connection without answering"
        buffer += chunk
    return dict(json.loads(buffer))


def _connect(path: Path) -> socket.socket:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(10)
    connection.connect(str(path))
    return connection


def test_deeply_nested_json_is_answered_with_an_error_and_the_connection_keeps_serving(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.start_master()
    connection = _connect(deployment.socket)
    try:
        depth = MAX_LINE_BYTES - 1_000  # as deep as a request line may be: json.loads recurses per level
        connection.sendall(b"[" * depth + b"\n")
        reply = _reply(connection)
        assert reply["ok"] is False and reply["kind"] == "ProtocolError" and "nests too deeply" in reply["error"]
        connection.sendall(b'{"v": 1, "op": "ping", "args": {"x": ' + b"[" * 5_000 + b"]" * 5_000 + b"}}\n")
        assert _reply(connection)["ok"] is False  # nested inside a valid request too
        connection.sendall(b'{"v": 1, "op": "ping", "args": {}}\n')
        assert _reply(connection)["result"]["pong"] is True  # the same connection still serves
    finally:
        connection.close()

    connection = _connect(deployment.socket)
    try:
        connection.sendall(b"[" * 100_000 + b"\n")  # over the line cap: an error, never a silent close
        reply = _reply(connection)
        assert reply["ok"] is False and "larger than" in reply["error"]
    finally:
        connection.close()
    assert client.call(deployment.socket, "ping", timeout=5)["pong"] is True


def test_500_connects_from_50_concurrent_clients_are_all_accepted(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.start_master()
    failures: list[str] = []
    answered: list[int] = []
    start = threading.Barrier(CLIENTS)

    def one_client() -> None:
        start.wait(timeout=30)
        for _ in range(CALLS_PER_CLIENT):
            try:
                client.call(deployment.socket, "ping", timeout=20)
                answered.append(1)
            except Exception as error:  # refused, EAGAIN, timed out: all count as not accepted
                failures.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=one_client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert not any(thread.is_alive() for thread in threads)
    assert not failures, f"{len(failures)} of {CLIENTS * CALLS_PER_CLIENT} connects failed, e.g. {failures[:3]}"
    assert len(answered) == CLIENTS * CALLS_PER_CLIENT
