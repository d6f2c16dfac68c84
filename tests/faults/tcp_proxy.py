"""A TCP proxy between jobd and MariaDB that can cut, stall and refuse connections.

Store outages are simulated here, never by stopping the real server: the
proxy listens on a free loopback port and forwards every connection to the
server, until a test tells it to misbehave:

* ``cut()``     closes every open connection (the server "went away");
* ``refuse()``  also closes new connections as soon as they are accepted
  (nothing answers: a server that is down or a firewall's RST);
* ``stall()``   keeps connections open but forwards nothing in either
  direction (a silent partition: packets dropped, no RST);
* ``heal()``    forwards again (new connections work; stalled ones resume).

It runs in a thread of the test process and uses only loopback addresses.
The bench's chaos soak uses it too.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from contextlib import suppress
from collections.abc import Callable
from typing import Literal

Mode = Literal["forward", "refuse", "stall"]


class TcpProxy:
    def __init__(self, target_host: str = "127.0.0.1", target_port: int = 3306) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(256)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self.mode: Mode = "forward"
        self._pairs: dict[socket.socket, socket.socket] = {}  # each end -> its peer
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._lock = threading.Lock()
        self._running = True
        self._wakeup_r, self._wakeup_w = socket.socketpair()
        self._selector.register(self._wakeup_r, selectors.EVENT_READ)
        self.connections_accepted = 0
        self._pending: tuple[Callable[[], object], threading.Event] | None = None
        self._thread = threading.Thread(target=self._serve, name="tcp-proxy", daemon=True)

    # -- the test's controls ------------------------------------------------

    def start(self) -> "TcpProxy":
        self._thread.start()
        return self

    def url(self, database: str, user: str = "root") -> str:
        """A jobd store URL that reaches ``database`` through this proxy."""
        return f"mysql+pymysql://{user}@127.0.0.1:{self.port}/{database}"

    def cut(self) -> None:
        """Close every open connection; new ones still go through (unless refused)."""
        self._command(lambda: self._close_all())

    def refuse(self) -> None:
        """Cut every connection and close each new one at once, until ``heal``."""
        self._command(lambda: (self._set_mode("refuse"), self._close_all()))

    def stall(self) -> None:
        """Forward nothing in either direction, silently, until ``heal``."""
        self._command(lambda: self._set_mode("stall"))

    def heal(self) -> None:
        self._command(lambda: self._set_mode("forward"))

    def stop(self) -> None:
        self._running = False
        self._wake()
        self._thread.join(timeout=5)
        self._close_all()
        with suppress(OSError):
            self._listener.close()
        self._wakeup_r.close()
        self._wakeup_w.close()
        self._selector.close()

    def __enter__(self) -> "TcpProxy":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- the proxy's thread --------------------------------------------------

    def _command(self, action: Callable[[], object]) -> None:
        done = threading.Event()
        with self._lock:
            self._pending = (action, done)
        self._wake()
        if not done.wait(timeout=5):
            raise RuntimeError("the TCP proxy did not answer")

    def _wake(self) -> None:
        with suppress(OSError):
            self._wakeup_w.send(b"x")

    def _set_mode(self, mode: Mode) -> None:
        previous, self.mode = self.mode, mode
        if previous == "stall" and mode != "stall":
            for end in list(self._pairs):
                with suppress(KeyError, ValueError):
                    self._selector.register(end, selectors.EVENT_READ)

    def _serve(self) -> None:
        while self._running:
            for key, _events in self._selector.select(timeout=0.5):
                sock = key.fileobj
                if sock is self._wakeup_r:
                    with suppress(OSError):
                        self._wakeup_r.recv(4096)
                    with self._lock:
                        pending, self._pending = self._pending, None
                    if pending is not None:
                        action, done = pending
                        action()
                        done.set()
                elif sock is self._listener:
                    self._accept()
                else:
                    self._forward(sock)  # type: ignore[arg-type]

    def _accept(self) -> None:
        try:
            client, _address = self._listener.accept()
        except OSError:
            return
        if self.mode == "refuse":
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            client.close()  # an RST: "connection reset" at once
            return
        try:
            server = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        self.connections_accepted += 1
        for end in (client, server):
            end.setblocking(False)
        self._pairs[client] = server
        self._pairs[server] = client
        if self.mode != "stall":
            self._selector.register(client, selectors.EVENT_READ)
            self._selector.register(server, selectors.EVENT_READ)

    def _forward(self, source: socket.socket) -> None:
        if self.mode == "stall":
            with suppress(KeyError, ValueError):
                self._selector.unregister(source)  # read nothing: bytes wait in the kernel
            return
        peer = self._pairs.get(source)
        if peer is None:
            return
        try:
            data = source.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close_pair(source)
            return
        try:
            peer.setblocking(True)
            peer.settimeout(5)
            peer.sendall(data)
            peer.setblocking(False)
        except OSError:
            self._close_pair(source)

    def _close_pair(self, end: socket.socket) -> None:
        peer = self._pairs.pop(end, None)
        for sock in (end, peer):
            if sock is None:
                continue
            self._pairs.pop(sock, None)
            with suppress(KeyError, ValueError):
                self._selector.unregister(sock)
            with suppress(OSError):
                sock.close()

    def _close_all(self) -> None:
        for end in list(self._pairs):
            if end in self._pairs:
                self._close_pair(end)


def wait_for_port_closed(port: int, timeout: float = 5.0) -> bool:
    """True once nothing accepts on ``port`` (a helper for tests that stop a proxy)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            return True
        time.sleep(0.05)
    return False
