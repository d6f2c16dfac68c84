"""One reader of the live view shared by every open page, pushed as Server-Sent Events.

However many dashboards are open, the master (or memcached) is asked once
per refresh: the feed reads ``Dashboard.view`` while at least one page
listens and stops when the last one leaves. Each page gets a frame when the
view changed (several a second while jobs progress) and a comment line
every few seconds otherwise, so proxies keep the stream open.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from .. import defaults

log = logging.getLogger("jobd.web")

Reader = Callable[[], dict[str, Any]]


def sse_frame(event: str, data: Any) -> bytes:
    """One Server-Sent Event; JSON never holds a raw newline, so one ``data:`` line suffices."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n".encode()


class LiveFeed:
    """Reads the view every ``interval`` seconds while anyone listens; wakes the listeners on change."""

    def __init__(self, read: Reader, *, interval: float = defaults.WEB_REFRESH_SECONDS) -> None:
        self._read = read
        self.interval = interval
        self.latest: dict[str, Any] | None = None
        self.version = 0
        self.reads = 0
        self._listeners = 0
        self._changed: asyncio.Condition | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_text = ""

    @property
    def listeners(self) -> int:
        return self._listeners

    async def subscribe(self) -> None:
        self._listeners += 1
        if self._changed is None:
            self._changed = asyncio.Condition()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    def unsubscribe(self) -> None:
        self._listeners = max(0, self._listeners - 1)

    async def current(self) -> dict[str, Any]:
        """The latest view; read now if the feed is idle (an API call with no page open)."""
        if self.latest is None or self._task is None or self._task.done():
            await self._refresh()
        assert self.latest is not None
        return self.latest

    async def _refresh(self) -> None:
        try:
            view = await run_in_threadpool(self._read)
        except Exception as error:  # the page keeps showing the last view with a note
            log.warning("reading the live view failed: %s", error)
            view = dict(self.latest or {}, note=f"reading the live view failed: {error}")
        self.reads += 1
        text = json.dumps({k: v for k, v in view.items() if k != "generated_at"}, sort_keys=True, default=str)
        self.latest = view
        if text != self._last_text:
            self._last_text = text
            self.version += 1
            if self._changed is not None:
                async with self._changed:
                    self._changed.notify_all()

    async def _run(self) -> None:
        while self._listeners > 0:
            started = time.monotonic()
            await self._refresh()
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def wait_change(self, seen: int, timeout: float) -> bool:
        """Wait until the version passes ``seen``; False at the timeout."""
        assert self._changed is not None
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self.version > seen), timeout)
            except asyncio.TimeoutError:
                return False
        return True

    async def stream(self, event: str = "view") -> AsyncIterator[bytes]:
        """The event stream of one page: the current view at once, then each change."""
        await self.subscribe()
        try:
            yield b"retry: 2000\n\n"
            seen = 0  # the first read makes version 1
            while True:
                if self.latest is not None and self.version > seen:
                    seen = self.version
                    yield sse_frame(event, self.latest)
                elif not await self.wait_change(seen, defaults.WEB_KEEPALIVE_SECONDS):
                    yield b": keep-alive\n\n"
        finally:
            self.unsubscribe()
