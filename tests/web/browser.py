"""Headless Chromium (Debian's package) driven over the DevTools protocol, for the dashboard's tests.

A few commands are all the tests need: open a page, evaluate JavaScript,
take a screenshot. The browser is started with its own profile folder and
stopped by pid; nothing is downloaded.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from support import require, stop_process, wait_until


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    def __init__(self, width: int = 1400, height: int = 1000) -> None:
        binary = chromium_binary()
        require(binary is not None, "chromium is not installed (apt-get install chromium)")
        assert binary is not None
        self.profile = Path(tempfile.mkdtemp(prefix="jobd-chromium-"))
        self.process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--disable-extensions", "--disable-background-networking", "--disable-sync", "--mute-audio",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self._stack = contextlib.ExitStack()
        self._ids = itertools.count(1)
        try:
            active = self.profile / "DevToolsActivePort"
            wait_until(lambda: active.exists() and len(active.read_text().splitlines()) >= 2, timeout=30, message="chromium to listen")
            port, path = active.read_text().splitlines()[:2]
            self.socket: ClientConnection = self._stack.enter_context(
                connect(f"ws://127.0.0.1:{port}{path}", max_size=64 * 1024 * 1024, open_timeout=10)
            )
            target = self.command("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.command("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            self.command("Page.enable", session=True)
            self.command("Runtime.enable", session=True)
        except BaseException:
            self.close()
            raise

    def command(self, method: str, params: dict[str, Any] | None = None, *, session: bool = False, timeout: float = 30) -> Any:
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        self.socket.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            raw = self.socket.recv(timeout=max(0.1, deadline - time.monotonic()))
            answer = json.loads(raw)
            if answer.get("id") == message_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            if time.monotonic() > deadline:
                raise TimeoutError(method)

    def open(self, url: str) -> None:
        self.command("Page.navigate", {"url": url}, session=True)
        wait_until(lambda: self.evaluate("document.readyState") == "complete", timeout=30, message=f"{url} to load")

    def evaluate(self, expression: str, *, await_promise: bool = False, timeout: float = 30) -> Any:
        result = self.command("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": await_promise},
                              session=True, timeout=timeout)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> None:
        data = self.command("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            if hasattr(self, "socket"):
                self.command("Browser.close", timeout=5)  # the browser ends its own renderer processes
        except Exception:  # noqa: BLE001 - already gone: the pid is checked below
            pass
        try:
            self._stack.close()
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        finally:
            stop_process(self.process)
            shutil.rmtree(self.profile, ignore_errors=True)
