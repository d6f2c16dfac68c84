"""The sections of jobd.toml below its top level — ``[daemons.NAME]`` and ``[web]`` — and the value types they share.

``jobd.config`` validates the whole file into these dataclasses; a daemon's
settings are all a worker or a pool needs, so they stand on their own here.
Their checks ride on the fields (``jobd.config_checks``): holding a config
loads no pydantic, only reading a file does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

from . import defaults
from .config_checks import STRICT, After, AtLeast, AtMost, Before, MinLength
from .durations import parse_duration
from .names import CALLABLE_PATH_PATTERN, MODULE_PATH_PATTERN, TASK_NAME_PATTERN
from .output_caps import OutputCaps, parse_size
from .rate_limit_settings import RateLimitSettings
from .shelltask import ShellTaskSpec

Duration = Annotated[float, Before(parse_duration)]
Size = Annotated[int, Before(parse_size)]  # bytes: 4096, "64 KB", "1 MB"
MIN_CAP_BYTES = 256  # room for the truncation marker and a useful start
# A cap on what a task produces, within what jobd allows for that kind of output.
ErrorCap = Annotated[int, Before(parse_size), AtLeast(MIN_CAP_BYTES), AtMost(defaults.LIMIT_ERROR_BYTES)]
OutputCap = Annotated[int, Before(parse_size), AtLeast(MIN_CAP_BYTES), AtMost(defaults.LIMIT_OUTPUT_BYTES)]
ProgressCap = Annotated[int, Before(parse_size), AtLeast(MIN_CAP_BYTES), AtMost(defaults.LIMIT_PROGRESS_MESSAGE_BYTES)]

# The caps on what a task controls (``jobd.output_caps``): name → (default, most allowed).
OUTPUT_CAP_SETTINGS: dict[str, tuple[int, int]] = {
    "max_error_bytes": (defaults.MAX_ERROR_BYTES, defaults.LIMIT_ERROR_BYTES),
    "max_traceback_bytes": (defaults.MAX_TRACEBACK_BYTES, defaults.LIMIT_OUTPUT_BYTES),
    "max_result_bytes": (defaults.MAX_RESULT_BYTES, defaults.LIMIT_OUTPUT_BYTES),
    "max_checkpoint_bytes": (defaults.MAX_CHECKPOINT_BYTES, defaults.LIMIT_OUTPUT_BYTES),
    "max_progress_message_bytes": (defaults.MAX_PROGRESS_MESSAGE_BYTES, defaults.LIMIT_PROGRESS_MESSAGE_BYTES),
    "max_log_line_bytes": (defaults.MAX_LOG_LINE_BYTES, defaults.LIMIT_OUTPUT_BYTES),
}


def _module_paths(modules: list[str]) -> list[str]:
    for module in modules:
        if not MODULE_PATH_PATTERN.match(module):
            raise ValueError(f"{module!r} is not a module path such as 'myapp.tasks'")
    return modules


def _callable_paths(tasks: dict[str, str]) -> dict[str, str]:
    for name, path in tasks.items():
        if not TASK_NAME_PATTERN.match(name):
            raise ValueError(f"{name!r} is not a valid task name")
        if not CALLABLE_PATH_PATTERN.match(path):
            raise ValueError(f"task {name!r}: {path!r} is not a callable path such as 'myapp.tasks:send'")
    return tasks


def host_port(address: str, example: str | None = None) -> str:
    """``address`` if it reads as host:port, else a ``ValueError`` (quoting ``example``, if given)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} is not host:port" + (f" such as {example!r}" if example else ""))
    return address


@dataclass(frozen=True)
class DaemonConfig(RateLimitSettings):
    """One ``[daemons.NAME]`` table: a worker pool and the tasks it serves (rate limits: ``rate_limit_settings``)."""

    __pydantic_config__: ClassVar[dict[str, Any]] = STRICT

    workers: Annotated[int, AtLeast(0), AtMost(512)] = defaults.DEFAULT_WORKERS
    # modules imported by the workers; their @jobd.task functions are served
    modules: Annotated[list[str], After(_module_paths)] = field(default_factory=list)
    # task name → 'package.module:function' of a plain callable
    tasks: Annotated[dict[str, str], After(_callable_paths)] = field(default_factory=dict)
    timeout: Duration = defaults.DEFAULT_TIMEOUT_SECONDS
    max_attempts: Annotated[int, AtLeast(1), AtMost(defaults.MOST_ATTEMPTS)] = defaults.DEFAULT_MAX_ATTEMPTS
    backoff_base: Duration = defaults.DEFAULT_BACKOFF_BASE_SECONDS
    backoff_max: Duration = defaults.DEFAULT_BACKOFF_MAX_SECONDS
    max_tasks_per_worker: Annotated[int, AtLeast(0)] = defaults.DEFAULT_MAX_TASKS_PER_WORKER
    drain_timeout: Duration | None = None
    enabled: bool = True
    # jobs claimed ahead of free workers (default: 4 per worker, more for short jobs; none under
    # concurrency caps); 0 also stops handing short jobs to a worker ahead of time
    prefetch: Annotated[int, AtLeast(0), AtMost(1000)] | None = None
    # most jobs of this daemon running at once across all hosts
    concurrency: Annotated[int, AtLeast(1)] | None = None
    # task name → most of its jobs running at once across all hosts
    task_concurrency: dict[str, int] = field(default_factory=dict)
    # task name → a command line run as a supervised subprocess
    shell: dict[str, ShellTaskSpec] = field(default_factory=dict)
    # Memory recycling (jobd.workers.memory): RSS checked after each job, and during one.
    # Recycle a worker whose RSS passed this after a job (0: never)...
    max_memory_mb: Annotated[int, AtLeast(0)] = defaults.DEFAULT_MAX_MEMORY_MB
    # ...and kill one whose RSS passes this during a job; the job is retried (0: never).
    max_memory_hard_mb: Annotated[int, AtLeast(0)] = defaults.DEFAULT_MAX_MEMORY_HARD_MB
    # Caps on what its tasks produce (``jobd.output_caps``); unset: the global setting of the same name.
    max_error_bytes: ErrorCap | None = None
    max_traceback_bytes: OutputCap | None = None
    max_result_bytes: OutputCap | None = None
    max_checkpoint_bytes: OutputCap | None = None
    max_progress_message_bytes: ProgressCap | None = None
    max_log_line_bytes: OutputCap | None = None

    def output_caps(self) -> OutputCaps:
        """The caps on what this daemon's tasks produce (its own settings, else the defaults)."""
        return caps_from(self)


def _web_bind(address: str) -> str:
    return host_port(address, "127.0.0.1:8686")


WebToken = Annotated[str, MinLength(defaults.WEB_MIN_TOKEN_LENGTH)]


@dataclass(frozen=True)
class WebConfig:
    """The ``[web]`` table: where ``jobd web`` listens and the tokens it accepts.

    Tokens may come from the environment instead (``JOBD_WEB_READ_TOKEN``,
    ``JOBD_WEB_ADMIN_TOKEN``), which keeps them out of a shared file.
    """

    __pydantic_config__: ClassVar[dict[str, Any]] = STRICT

    bind: Annotated[str, After(_web_bind)] = defaults.DEFAULT_WEB_BIND
    read_token: WebToken | None = None  # lets a client read
    admin_token: WebToken | None = None  # lets a client read and act


# Settings object id → (the object, its caps): the master asks for a job's caps at each outcome.
# Configs are frozen, and the object is kept so that its id cannot be reused while cached.
_CAPS_CACHE: dict[int, tuple[object, OutputCaps]] = {}


def caps_from(settings: Any) -> OutputCaps:
    """The caps of a daemon's settings or of the whole config (``max_*`` attributes; None: the default)."""
    cached = _CAPS_CACHE.get(id(settings))
    if cached is not None and cached[0] is settings:
        return cached[1]
    values = {}
    for key, (default, _most) in OUTPUT_CAP_SETTINGS.items():
        value = getattr(settings, key)
        values[key.removeprefix("max_")] = default if value is None else value
    caps = OutputCaps(**values)
    if len(_CAPS_CACHE) > 1000:  # reloads make new config objects: forget the old ones now and then
        _CAPS_CACHE.clear()
    _CAPS_CACHE[id(settings)] = (settings, caps)
    return caps
