"""Which jobd.toml a process reads: ``--config``, else ``$JOBD_CONFIG``, else ``./jobd.toml``.

A module of its own, importing nothing heavy, so that a command can find
(and fingerprint) its config file without building the config models.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import defaults


def find_config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The config file to use: ``--config``, else ``$JOBD_CONFIG``, else ``./jobd.toml``."""
    if explicit:
        return Path(explicit).resolve()
    from_env = os.environ.get(defaults.CONFIG_ENV_VAR)
    if from_env:
        return Path(from_env).resolve()
    return (Path.cwd() / defaults.CONFIG_FILE_NAME).resolve()
