"""`jobd trigger DAEMON TASK --from-file jobs.jsonl`: one job per line, submitted in bulk.

Each line is one job's args as a JSON object (blank lines are skipped). The
whole file is read and checked before anything is submitted: a line that is
not a JSON object stops the command with its line number (exit 2), and
nothing is written; then every job goes in through ``jobd.submit_many``
(``jobd.ops.jobs.submit_intents``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobd.bulk import BulkResult
from jobd.config import JobdConfig
from jobd.errors import InvalidArgs
from jobd.ops.jobs import submit_intents


@dataclass(frozen=True)
class JobsFile:
    """The jobs a file holds, and the line each one came from."""

    where: str  # the file's name, or "standard input"
    jobs: list[dict[str, Any]]
    lines: list[int]


def parse_json_lines(lines: Iterable[str], where: str) -> JobsFile:
    """The args objects of a JSON-lines text; ``InvalidArgs`` naming ``where`` and the first bad line."""
    parsed = JobsFile(where, [], [])
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            args = json.loads(line, parse_constant=_refuse_non_json_number)
        except ValueError as error:
            raise InvalidArgs(f"{where} line {number}: not valid JSON: {error}") from None
        if not isinstance(args, dict):
            raise InvalidArgs(f"{where} line {number}: must be a JSON object of args such as {{\"contact_id\": 7}}")
        parsed.jobs.append(args)
        parsed.lines.append(number)
    return parsed


def read_jobs_file(source: str) -> JobsFile:
    """The jobs of ``--from-file``: a path, or ``-`` for standard input."""
    if source == "-":
        return parse_json_lines(sys.stdin, "standard input")
    path = Path(source)
    try:
        with path.open(encoding="utf-8") as handle:
            return parse_json_lines(handle, str(path))
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidArgs(f"--from-file {source}: cannot read it: {getattr(error, 'strerror', None) or error}") from None


def submit_file(settings: JobdConfig, daemon: str, task: str, source: str, *, priority: int, run_at: float | None) -> str:
    """Submit one job per line of ``source`` (all or none); the line that says what was submitted."""
    parsed = read_jobs_file(source)
    try:
        result = submit_intents(settings, daemon, task, parsed.jobs, priority=priority, run_at=run_at)
    except InvalidArgs as error:
        raise InvalidArgs(f"{parsed.where} {_item_as_line(str(error), parsed.lines)}") from None
    return summary(result)


def summary(result: BulkResult) -> str:
    if not result.ids:
        return "submitted 0 jobs (no line holds one)"
    first, last = min(result.ids), max(result.ids)
    span = f"id {first}" if first == last else f"ids {first}..{last}"
    return f"submitted {result.submitted} job{'' if result.submitted == 1 else 's'} ({span})"


def _item_as_line(message: str, lines: list[int]) -> str:
    """``submit_many`` names an item by its index; a person editing the file needs its line number."""
    prefix, sep, rest = message.partition(": ")
    number = prefix.removeprefix("item ")
    if not sep or number == prefix or not number.isdigit() or int(number) >= len(lines):
        return message
    return f"line {lines[int(number)]}: {rest}"


def _refuse_non_json_number(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (JSON has no NaN or Infinity)")
