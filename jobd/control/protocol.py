"""The control socket's wire format: one JSON object per line, both ways.

Requests come from outside the master (CLI, apps), so they are untrusted:
capped in size, required to be a JSON object with a known version, an
operation name and an ``args`` object. Replies are ``{"v": 1, "ok": true,
"result": …}`` or ``{"v": 1, "ok": false, "error": "…", "code": N}``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .. import defaults
from ..errors import ProtocolError

VERSION = defaults.CONTROL_PROTOCOL_VERSION
MAX_LINE_BYTES = defaults.CONTROL_MAX_REQUEST_BYTES
_OPERATION = re.compile(r"^[a-z][a-z_]{0,31}$")


@dataclass(frozen=True)
class Request:
    op: str
    args: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        return (json.dumps({"v": VERSION, "op": self.op, "args": self.args}) + "\n").encode()


def parse_request(line: bytes) -> Request:
    """Decode one request line, or raise ``ProtocolError`` saying what is wrong."""
    if len(line) > MAX_LINE_BYTES:
        raise ProtocolError(f"request larger than {MAX_LINE_BYTES} bytes")
    try:
        data = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("request is not a JSON object on one line") from None
    except RecursionError:  # json.loads recurses per level: 100,000 "[" used to end the connection
        raise ProtocolError("request nests too deeply to be a jobd request") from None
    if not isinstance(data, dict):
        raise ProtocolError("request must be a JSON object")
    if data.get("v") != VERSION:
        raise ProtocolError(f"unsupported protocol version {data.get('v')!r}; this master speaks {VERSION}")
    op, args = data.get("op"), data.get("args", {})
    if not isinstance(op, str) or not _OPERATION.match(op):
        raise ProtocolError("'op' must be an operation name such as \"status\"")
    if not isinstance(args, dict):
        raise ProtocolError("'args' must be a JSON object")
    unknown = set(data) - {"v", "op", "args"}
    if unknown:
        raise ProtocolError(f"unknown request fields: {', '.join(sorted(unknown))}")
    return Request(op, args)


def ok_reply(result: Any) -> bytes:
    return (json.dumps({"v": VERSION, "ok": True, "result": result}, default=str) + "\n").encode()


def error_reply(message: str, code: int, kind: str = "JobdError") -> bytes:
    """An error reply; ``kind`` is the name of the jobd error class, so clients re-raise it."""
    return (json.dumps({"v": VERSION, "ok": False, "error": message, "code": code, "kind": kind}) + "\n").encode()
