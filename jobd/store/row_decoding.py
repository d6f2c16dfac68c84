"""Decoding a jobs row that anyone may have written: never raise, say what is wrong instead.

Applications insert jobs with their own SQL, so a row can hold what jobd
would never write: args nested thousands of levels deep (``json.loads``
recurses per level), bytes that are not UTF-8 (SQLite stores what it is
given), ``attempts`` at the column's integer limit, text in a number
column, a state that is not a jobd state (stored before the schema's
CHECK). Decoding one such row used to raise in the master's claim, again
after each restart, and stopped claims for every daemon. Here each field is
decoded on its own; what cannot be is kept readable and named in
``Job.row_problem``, and the master ends that job ``dead`` with the reason
instead of running it (``Job.unrunnable``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import partial
from typing import Any

from .. import defaults
from ..errors import UnknownJob
from ..job import Job
from ..states import JobState

#: SQLite's text conversion (``sqlite3`` ``text_factory``): bytes that are not
#: UTF-8 become lone surrogates instead of an error that aborts the whole read.
#: A C call, as cheap as the default.
sqlite_text: Callable[[bytes], str] = partial(str, encoding="utf-8", errors="surrogateescape")

_STATES = {str(state): state for state in JobState}


def decode_found(row: Any, job_id: int) -> Job:
    """The job in the row read for ``job_id``; ``UnknownJob`` when there was none (None)."""
    if row is None:
        raise UnknownJob(f"no job with id {job_id}")
    return decode_row(row)


def decode_row(row: Any) -> Job:
    """The job in a jobs row; problems that make it unrunnable are in ``row_problem``, never raised."""
    problems: list[str] = []
    args, args_problem = _decode_args(row["args"])
    state_text = row["state"]
    state: JobState | str = _STATES.get(state_text) or _readable(str(state_text))
    if not isinstance(state, JobState):
        problems.append(f"state {state!r} is not a jobd state")
    attempts = _integer(row["attempts"], "attempts", problems)
    if attempts >= defaults.MAX_ATTEMPTS_COUNTER:
        problems.append(f"attempts is {attempts}, at the counter's limit ({defaults.MAX_ATTEMPTS_COUNTER})")
    task = _readable(row["task"])
    if task is not row["task"]:
        problems.append("the task name is not valid UTF-8")
    priority = _integer(row["priority"], "priority", problems)
    max_attempts = _optional_integer(row["max_attempts"], "max_attempts", problems)
    run_at = _number(row["run_at"], "run_at", problems)
    return Job(
        id=int(row["id"]),
        daemon=_readable(row["daemon"]),
        task=task,
        args=args,
        args_problem=args_problem,
        row_problem="; ".join(problems) or None,
        state=state,  # type: ignore[arg-type]  # an unknown state is shown as stored
        priority=priority,
        attempts=attempts,
        max_attempts=max_attempts,
        run_at=run_at,
        unique_key=_readable(row["unique_key"]),
        fire_key=_readable(row["fire_key"]),
        origin=_readable(row["origin"]),
        owner=_readable(row["owner"]),
        worker_pid=_optional_integer(row["worker_pid"], "worker_pid", []),
        checkpoint=_decode_or_text(row["checkpoint"]),
        progress=_decode_or_text(row["progress"]),
        error=_readable(row["error"]),
        traceback=_readable(row["traceback"]),
        result=_decode_or_text(row["result"]),
        cancel_requested=bool(row["cancel_requested"]),
        created_at=_number(row["created_at"], "created_at", []),
        started_at=_number(row["started_at"], "started_at", []),
        finished_at=_number(row["finished_at"], "finished_at", []),
        updated_at=_number(row["updated_at"], "updated_at", []),
        batch_id=_optional_integer(row.get("batch_id"), "batch_id", []),
    )


def _decode_args(text: Any) -> tuple[dict[str, Any], str | None]:
    if isinstance(text, str) and not text.isascii() and not _is_utf8(text):
        return {}, "args are not valid UTF-8 text"
    try:
        args = _loads(text)
    except RecursionError:
        return {}, f"args nest deeper than Python's JSON decoder can follow ({len(str(text)):,} bytes)"
    except (ValueError, TypeError) as error:
        return {}, f"args are not valid JSON ({error})"
    if not isinstance(args, dict):
        return {}, "args must be a JSON object such as {\"id\": 42}"
    return args, None


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


#: Python's JSON decoder reads NaN and Infinity, which JSON does not have: a row holding them (written by
#: another application; jobd refuses them) would make every JSON answer that shows the job fail.
_STRICT_JSON = json.JSONDecoder(parse_constant=_not_json)


def _loads(text: Any) -> Any:
    if text is None or text == "":
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return _STRICT_JSON.decode(text)


def _decode_or_text(text: Any) -> Any:
    """Stored JSON decoded, or the stored text as it is (readable) when it is not JSON."""
    try:
        return _loads(text)
    except (ValueError, TypeError, RecursionError):
        return _readable(text) if isinstance(text, str) else repr(text)


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _readable(text: Any) -> Any:
    """Text as stored, with bytes that were not UTF-8 shown as U+FFFD (printable, encodable anywhere)."""
    if not isinstance(text, str) or text.isascii() or _is_utf8(text):
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _integer(value: Any, name: str, problems: list[str]) -> int:
    found = _optional_integer(value, name, problems)
    return 0 if found is None else found


def _optional_integer(value: Any, name: str, problems: list[str]) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        problems.append(f"{name} is {_readable(value)!r}, not an integer")
        return 0


def _number(value: Any, name: str, problems: list[str]) -> float | None:
    if value is None:
        return None
    try:
        number = value if isinstance(value, float) else float(value)
    except (TypeError, ValueError):
        problems.append(f"{name} is {_readable(value)!r}, not a number")
        return None
    if not math.isfinite(number):  # SQLite keeps 9e999 as infinity: never due, and not JSON when shown
        problems.append(f"{name} is {number}, not a finite time")
        return None
    return number
