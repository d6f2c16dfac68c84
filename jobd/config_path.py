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


def config_lookup(config: str | os.PathLike[str] | None) -> tuple[str | None, str | None, str]:
    """What ``find_config_path(config)`` depends on: the name given, ``$JOBD_CONFIG`` and the working folder.

    A process that submits all day asks for the same config every time, and
    resolving a path asks the file system about every folder on it: callers
    remember what they found under this key instead. An absolute name depends
    on neither the environment nor the working folder.
    """
    explicit = os.fspath(config) if config else None
    if explicit is not None and os.path.isabs(explicit):
        return explicit, None, ""
    return explicit, os.environ.get(defaults.CONFIG_ENV_VAR), os.getcwd()
