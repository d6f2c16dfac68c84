"""Caps on what a task controls: error line, traceback, result, checkpoint, progress message, log lines.

A task's output ends up in the store, in memcached, in the log file and on
the pipe between a worker and its master. Without a bound, one job raising
an exception with a 10 MB message, or returning 20 MB, can make a store
refuse a write or a pipe carry megabytes at every retry: one job's data
must never stop a host (DESIGN invariant 8). So every such field has a cap:

* text (error line, traceback, progress message, log line) is cut to its cap
  on a UTF-8 character boundary, with a visible marker saying how much went
  (``… [truncated 97,952 bytes]``); a traceback keeps its head and its tail,
  where the frames that matter are;
* JSON values (a result, a checkpoint) are never cut, since half a value is
  worse than none: one over its cap, or that is not strict JSON (``NaN``,
  ``Infinity``, an object), is refused with a reason the operator can act on
  (``result is 17.0 MB, over max_result_bytes = 1 MB``);
* lone surrogates (``"\\udcff"``, what a file name that is not UTF-8 decodes to)
  cannot be encoded as UTF-8 by any store driver: they are written as the six
  characters ``\\udcff`` instead.

Pure functions over values: the worker applies them before sending anything,
and the master again before writing (a last line of defence).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from . import defaults
from .errors import JobdError
from .job import encode_json

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTINUATION_BYTE = 0b1100_0000
_MARKER = "… [truncated {removed:,} bytes]"


class OutputRejected(JobdError):
    """A task's result or checkpoint cannot be stored (too large, or not strict JSON); the message says why."""


@dataclass(frozen=True)
class OutputCaps:
    """The caps in force for one daemon's tasks, in bytes of UTF-8."""

    error_bytes: int = defaults.MAX_ERROR_BYTES
    traceback_bytes: int = defaults.MAX_TRACEBACK_BYTES
    result_bytes: int = defaults.MAX_RESULT_BYTES
    checkpoint_bytes: int = defaults.MAX_CHECKPOINT_BYTES
    progress_message_bytes: int = defaults.MAX_PROGRESS_MESSAGE_BYTES
    log_line_bytes: int = defaults.MAX_LOG_LINE_BYTES


DEFAULT_CAPS = OutputCaps()


def human_size(size: int) -> str:
    """``1 MB``, ``17.0 MB``, ``64 KB``, ``900 bytes`` (binary units, as the caps are set)."""
    for unit, factor in (("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= factor:
            return f"{size // factor} {unit}" if size % factor == 0 else f"{size / factor:.1f} {unit}"
    return f"{size} bytes"


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|bytes?|k|kb|kib|m|mb|mib)?\s*$", re.IGNORECASE)


def parse_size(value: Any) -> Any:
    """A size setting as bytes: an integer, or text such as ``"64 KB"`` or ``"1 MB"`` (binary units).

    Anything else is returned as is, for the config's own validation to refuse.
    """
    if not isinstance(value, str):
        return value
    match = _SIZE.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a size such as 4096, '64 KB' or '1 MB'")
    number, unit = float(match.group(1)), (match.group(2) or "b").lower()
    factor = 1 << 20 if unit.startswith("m") else 1 << 10 if unit.startswith("k") else 1
    return int(number * factor)


def clean_text(text: str) -> str:
    """``text`` with lone surrogates written as ``\\udcff`` escapes, so any driver can encode it as UTF-8."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def truncate_text(text: str, max_bytes: int, *, keep_tail: bool = False) -> str:
    """``text`` cleaned and cut to at most ``max_bytes`` of UTF-8, with a marker saying how much was cut.

    ``keep_tail`` keeps the start and the end and cuts the middle (a
    traceback: where it started, and the exception at its end).
    """
    text = clean_text(text)
    if len(text) * 4 <= max_bytes:  # a character is at most 4 bytes: no need to encode
        return text
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    longest_marker = len(_MARKER.format(removed=len(data)).encode("utf-8")) + 2  # and its separators
    budget = max_bytes - longest_marker
    if budget <= 0:
        return _cut_head(data, max_bytes).decode("utf-8")
    if not keep_tail:
        head = _cut_head(data, budget)
        return head.decode("utf-8") + " " + _MARKER.format(removed=len(data) - len(head))
    head = _cut_head(data, budget // 2)
    tail = _cut_tail(data, budget - budget // 2)
    removed = len(data) - len(head) - len(tail)
    return head.decode("utf-8") + "\n" + _MARKER.format(removed=removed) + "\n" + tail.decode("utf-8")


def _cut_head(data: bytes, size: int) -> bytes:
    """The first ``size`` bytes at most, ending on a character boundary."""
    end = size
    while 0 < end < len(data) and data[end] & _CONTINUATION_BYTE == 0b1000_0000:
        end -= 1
    return data[:end]


def _cut_tail(data: bytes, size: int) -> bytes:
    """The last ``size`` bytes at most, starting on a character boundary."""
    start = max(0, len(data) - size)
    while start < len(data) and data[start] & _CONTINUATION_BYTE == 0b1000_0000:
        start += 1
    return data[start:]


def json_text(value: Any, what: str) -> str:
    """Strict JSON for ``value`` (lone surrogates escaped); ``OutputRejected`` if it is not JSON."""
    try:
        text = encode_json(value)
    except (TypeError, ValueError, RecursionError) as error:
        if isinstance(error, ValueError) and "Out of range float" in str(error):
            raise OutputRejected(f"{what} holds NaN or Infinity, which JSON cannot represent") from None
        raise OutputRejected(f"{what} is not JSON: {error}") from None
    if text.isascii():
        return text
    # A lone surrogate can only be inside a JSON string: write it as an escaped
    # backslash and its code, the same six characters ``clean_text`` writes.
    return _SURROGATE.sub(lambda match: "\\\\u%04x" % ord(match.group()), text)


def encode_capped(value: Any, max_bytes: int, *, what: str, setting: str) -> str:
    """Strict JSON for ``value`` of at most ``max_bytes``; ``OutputRejected`` saying why not."""
    text = json_text(value, what)
    if len(text) * 4 > max_bytes:
        size = len(text.encode("utf-8"))
        if size > max_bytes:
            raise OutputRejected(f"{what} is {human_size(size)}, over {setting} = {human_size(max_bytes)}")
    return text


def encode_result(value: Any, caps: OutputCaps) -> str:
    """A task's return value as stored; ``OutputRejected`` if it is too large or not JSON."""
    return encode_capped(value, caps.result_bytes, what="result", setting="max_result_bytes")


def encode_checkpoint(value: Any, caps: OutputCaps) -> str:
    """A task's checkpoint as stored; ``OutputRejected`` if it is too large or not JSON."""
    return encode_capped(value, caps.checkpoint_bytes, what="checkpoint", setting="max_checkpoint_bytes")


def cap_error(error: str | None, caps: OutputCaps) -> str | None:
    return None if error is None else truncate_text(error, caps.error_bytes)


def cap_traceback(traceback: str | None, caps: OutputCaps) -> str | None:
    return None if traceback is None else truncate_text(traceback, caps.traceback_bytes, keep_tail=True)


def cap_log_line(message: str, max_bytes: int) -> str:
    """One log record (its traceback included) cut in the middle to ``max_bytes``."""
    return truncate_text(message, max_bytes, keep_tail=True)


def cap_progress(progress: dict[str, Any], caps: OutputCaps) -> dict[str, Any]:
    """A progress report fit to store: its message capped, NaN or infinite numbers dropped (display data)."""
    capped = dict(progress)
    for key, value in progress.items():
        if isinstance(value, float) and not math.isfinite(value):
            capped[key] = None
        elif isinstance(value, str):
            capped[key] = truncate_text(value, caps.progress_message_bytes)
    message = capped.get("message")
    if message is not None and not isinstance(message, str):
        capped["message"] = truncate_text(str(message), caps.progress_message_bytes)
    return capped
