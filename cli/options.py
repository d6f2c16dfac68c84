"""Options shared by every command, and the config they point at."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from jobd.defaults import MAX_ROW_ID

if TYPE_CHECKING:
    from jobd.config import JobdConfig

ConfigOption = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="Path to jobd.toml (default: $JOBD_CONFIG, then ./jobd.toml)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for programs instead of a table.")]
#: A job's or a batch's id: what the store can hold (SQLite refuses a larger integer with an OverflowError).
RowId = Annotated[int, typer.Argument(min=1, max=MAX_ROW_ID)]


def load_settings(path: Path | None, *, with_schedule: bool = True) -> "JobdConfig":
    """The validated jobd.toml, parsed once per command (``--config``, ``$JOBD_CONFIG`` or ./jobd.toml).

    Commands that only read or submit jobs pass ``with_schedule=False``: the
    schedule files are then not parsed (``jobd.config.load_config``).
    Imported here, when a command runs, so that ``jobd --help`` does not build the config models.
    """
    from jobd.config import load_config

    return load_config(path, with_schedule=with_schedule)
