"""`jobd systemd install`: put the systemd units in place for this installation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from jobd.ops.systemd_units import DEFAULT_CONFIG, DEFAULT_UNIT_DIR, DEFAULT_USER, install_units, running_executable

from .output import console, reports_errors

app = typer.Typer(help="Run jobd under systemd: install the units.", no_args_is_help=True)


@app.command()
@reports_errors
def install(
    dest: Annotated[Path, typer.Option(help="Unit directory.")] = Path(DEFAULT_UNIT_DIR),
    prefix: Annotated[Optional[Path], typer.Option(help="Root to install under (like DESTDIR), e.g. for packaging.")] = None,
    jobd: Annotated[Optional[str], typer.Option("--jobd", help="jobd executable for ExecStart (default: this one).")] = None,
    config_path: Annotated[str, typer.Option("--config-path", help="jobd.toml the service uses.")] = DEFAULT_CONFIG,
    user: Annotated[str, typer.Option(help="Service user and group (create it: useradd --system jobd).")] = DEFAULT_USER,
    force: Annotated[bool, typer.Option("--force", help="Replace unit files that differ.")] = False,
) -> None:
    """Write jobd.service, jobd-migrate.service and an example drop-in.

    Example: sudo jobd systemd install && sudo systemctl daemon-reload && sudo systemctl enable --now jobd
    """
    unit_dir = Path(str(prefix).rstrip("/") + str(dest.resolve())) if prefix else dest
    written = install_units(unit_dir, executable=jobd or running_executable(), config=config_path, user=user, overwrite=force)
    for path in written:
        console.print(f"wrote {path}", highlight=False)
    console.print("next: systemctl daemon-reload && systemctl enable --now jobd.service", highlight=False)
