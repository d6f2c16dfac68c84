"""The ASGI layer in front of every route: Host check, body cap, security headers.

It sits outside Starlette's routing so that nothing, not even a 404, is
answered without the headers, and no handler ever sees a body over the cap.
An oversized body is still read (and dropped) up to a limit before the 413,
so a client that sends it whole sees the answer instead of a reset.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import defaults
from .responses import error_response
from .security import Tokens, host_header_allowed

SECURITY_HEADERS = [
    # The page's own script and style files only: no inline script, nothing from elsewhere.
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class Guard:
    def __init__(self, app: ASGIApp, tokens: Tokens, *, max_body: int = defaults.WEB_MAX_BODY_BYTES) -> None:
        self.app = app
        self.tokens = tokens
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in SECURITY_HEADERS if name not in names]
                if b"cache-control" not in names:
                    extra.append((b"cache-control", b"no-store"))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}
        if not host_header_allowed(headers.get("host"), self.tokens):
            response = error_response(403, "unknown Host: without tokens only loopback names (127.0.0.1, localhost) are served")
            await response(scope, receive, send_with_headers)
            return
        declared = headers.get("content-length")
        if scope["method"] in ("GET", "HEAD", "OPTIONS") and not declared and "transfer-encoding" not in headers:
            await self.app(scope, receive, send_with_headers)
            return
        body, too_large = await self._read_body(receive, declared)
        if too_large:
            response = error_response(413, f"the request body is over {self.max_body} bytes")
            await response(scope, receive, send_with_headers)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send_with_headers)

    async def _read_body(self, receive: Receive, declared: str | None) -> tuple[bytes, bool]:
        """The whole body, or (b"", True) once it passes the cap (the rest drained up to a limit)."""
        if declared is not None and declared.isdigit() and int(declared) > defaults.WEB_DRAIN_BODY_BYTES:
            return b"", True  # not worth reading: the client gets the 413 or a reset
        chunks: list[bytes] = []
        size = 0
        too_large = declared is not None and declared.isdigit() and int(declared) > self.max_body
        while True:
            message: Any = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                too_large = True
            if not too_large:
                chunks.append(chunk)
            if not message.get("more_body", False) or size > defaults.WEB_DRAIN_BODY_BYTES:
                break
        return (b"", True) if too_large else (b"".join(chunks), False)
