"""The shapes of names jobd accepts: daemons, tasks, task paths, modules.

Kept apart from ``jobd.config`` so that a worker, the hand-off datagrams and
``@jobd.task`` can check a name without importing config validation
(pydantic) with it.
"""

from __future__ import annotations

import re

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
TASK_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,189}$")
CALLABLE_PATH_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
MODULE_PATH_PATTERN = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
