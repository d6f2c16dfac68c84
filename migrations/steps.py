"""Migration files and the tagged steps inside them (pure parsing, plus one folder reader).

A file ``0001_contacts.sql`` holds one or more steps, each opened by a
marker comment ``-- jobd:step <tag>``. A step is the unit jobd applies,
records and checksums: MariaDB commits every DDL statement on its own, so a
step is kept small enough that "recorded" means "fully applied".
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from jobd.migrations.errors import MigrationFolderError
from jobd.text_files import NotUtf8, read_utf8

FILE_PATTERN = re.compile(r"^(?P<version>[0-9]{4,})_(?P<name>[a-z0-9_]+)\.sql$")
MARKER_PATTERN = re.compile(r"^--\s*jobd:step\b(?P<rest>.*)$")
TAG_PATTERN = re.compile(r"^[a-z0-9_]{1,64}$")


@dataclass(frozen=True)
class Step:
    """One tagged step: the statements jobd runs and records as a unit."""

    file: str  # e.g. "0001_contacts.sql"
    version: int
    tag: str
    index: int  # position inside its file, from 0
    sql: str  # the step's text as written (comments included)
    statements: tuple[str, ...]
    checksum: str  # sha256 of the normalised text: editing an applied step is detected

    @property
    def key(self) -> tuple[str, str]:
        """The identity a tenant's tracking table records."""
        return (self.file, self.tag)

    @property
    def label(self) -> str:
        return f"{self.file}:{self.tag}"


def checksum_of(text: str) -> str:
    """Checksum that ignores line-ending and trailing-whitespace noise, nothing else."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return hashlib.sha256("\n".join(lines).strip("\n").encode("utf-8")).hexdigest()


def split_statements(sql: str) -> list[str]:
    """Split SQL text on top-level ``;``, respecting quotes and comments.

    Comment-only fragments are dropped. Compound bodies (``BEGIN … END`` with
    inner semicolons, ``DELIMITER``) are not supported, as documented.
    """
    statements: list[str] = []
    current: list[str] = []
    position, length = 0, len(sql)
    while position < length:
        char = sql[position]
        if char in ("'", '"', "`"):
            end = position + 1
            while end < length:
                if sql[end] == "\\" and char != "`":
                    end += 2
                    continue
                if sql[end] == char:
                    if end + 1 < length and sql[end + 1] == char:  # doubled quote
                        end += 2
                        continue
                    break
                end += 1
            current.append(sql[position : end + 1])
            position = end + 1
        elif sql.startswith("--", position) or char == "#":
            end = sql.find("\n", position)
            end = length if end == -1 else end
            current.append(sql[position:end])
            position = end
        elif sql.startswith("/*", position):
            end = sql.find("*/", position + 2)
            end = length if end == -1 else end + 2
            current.append(sql[position:end])
            position = end
        elif char == ";":
            statements.append("".join(current))
            current = []
            position += 1
        else:
            current.append(char)
            position += 1
    statements.append("".join(current))
    return [text.strip() for text in statements if _has_code(text)]


def _has_code(fragment: str) -> bool:
    without_comments = re.sub(r"/\*.*?\*/", "", fragment, flags=re.S)
    without_comments = re.sub(r"(--|#)[^\n]*", "", without_comments)
    return bool(without_comments.strip())


def parse_migration_file(file_name: str, text: str) -> list[Step]:
    """Parse one file's text into its steps. Raises MigrationFolderError naming file and line."""
    match = FILE_PATTERN.fullmatch(file_name)
    if not match:
        raise MigrationFolderError(
            f"{file_name}: migration files are named NNNN_name.sql (digits, then lowercase name)"
        )
    version = int(match["version"])
    sections: list[tuple[str, int, list[str]]] = []
    preamble: list[str] = []
    for line_number, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        marker = MARKER_PATTERN.match(line.strip())
        if marker:
            tag = marker["rest"].strip()
            if not TAG_PATTERN.fullmatch(tag):
                raise MigrationFolderError(
                    f"{file_name}:{line_number}: step tag {tag!r} must be lowercase letters, digits, _"
                )
            if any(existing == tag for existing, _, _ in sections):
                raise MigrationFolderError(f"{file_name}:{line_number}: step tag {tag!r} is used twice")
            sections.append((tag, line_number, []))
        elif sections:
            sections[-1][2].append(line)
        else:
            preamble.append(line)
    if not sections:
        # A file without markers is one step named after the file.
        sections = [(match["name"], 1, preamble)]
    elif _has_code("\n".join(preamble)):
        raise MigrationFolderError(f"{file_name}: SQL before the first '-- jobd:step' marker")
    steps = []
    for index, (tag, line_number, lines) in enumerate(sections):
        body = "\n".join(lines).strip("\n")
        statements = tuple(split_statements(body))
        if not statements:
            raise MigrationFolderError(f"{file_name}:{line_number}: step {tag!r} has no SQL")
        steps.append(Step(file_name, version, tag, index, body, statements, checksum_of(body)))
    return steps


def order_steps(files: dict[str, str]) -> list[Step]:
    """All steps of a folder's files, in the order they apply. Versions must be unique."""
    seen_versions: dict[int, str] = {}
    steps: list[Step] = []
    for file_name in sorted(files):
        file_steps = parse_migration_file(file_name, files[file_name])
        version = file_steps[0].version
        if version in seen_versions:
            raise MigrationFolderError(
                f"{file_name}: version {version} is also used by {seen_versions[version]}"
            )
        seen_versions[version] = file_name
        steps.extend(file_steps)
    return sorted(steps, key=lambda step: (step.version, step.index))


def _sql_text(path: Path) -> str:
    try:
        return read_utf8(path)
    except NotUtf8 as error:
        raise MigrationFolderError(f"{path.name}: {error}") from None


def load_steps(folder: Path) -> list[Step]:
    """Read every ``*.sql`` file of ``folder`` (other files are ignored) and order their steps."""
    if not folder.is_dir():
        raise MigrationFolderError(f"{folder}: migrations folder not found")
    files = {path.name: _sql_text(path) for path in folder.glob("*.sql")}
    if not files:
        raise MigrationFolderError(f"{folder}: no *.sql migration files")
    return order_steps(files)
