"""The sections of jobd.toml below its top level — ``[daemons.NAME]`` and ``[web]`` — and the value types they share.

``jobd.config`` validates the whole file with these models; a daemon's
settings are all a worker or a pool needs, so they stand on their own here.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from . import defaults
from .durations import parse_duration
from .names import CALLABLE_PATH_PATTERN, MODULE_PATH_PATTERN, TASK_NAME_PATTERN
from .output_caps import OutputCaps, parse_size
from .rate_limit_settings import RateLimitSettings
from .shelltask import ShellTaskSpec

Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]  # bytes: 4096, "64 KB", "1 MB"

# The caps on what a task controls (``jobd.output_caps``): name → (default, most allowed).
OUTPUT_CAP_SETTINGS: dict[str, tuple[int, int]] = {
    "max_error_bytes": (defaults.MAX_ERROR_BYTES, defaults.LIMIT_ERROR_BYTES),
    "max_traceback_bytes": (defaults.MAX_TRACEBACK_BYTES, defaults.LIMIT_OUTPUT_BYTES),
    "max_result_bytes": (defaults.MAX_RESULT_BYTES, defaults.LIMIT_OUTPUT_BYTES),
    "max_checkpoint_bytes": (defaults.MAX_CHECKPOINT_BYTES, defaults.LIMIT_OUTPUT_BYTES),
    "max_progress_message_bytes": (defaults.MAX_PROGRESS_MESSAGE_BYTES, defaults.LIMIT_PROGRESS_MESSAGE_BYTES),
    "max_log_line_bytes": (defaults.MAX_LOG_LINE_BYTES, defaults.LIMIT_OUTPUT_BYTES),
}
MIN_CAP_BYTES = 256  # room for the truncation marker and a useful start


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class DaemonConfig(Strict, RateLimitSettings):
    """One ``[daemons.NAME]`` table: a worker pool and the tasks it serves (rate limits: ``rate_limit_settings``)."""

    workers: int = Field(defaults.DEFAULT_WORKERS, ge=0, le=512)
    modules: list[str] = Field(
        default_factory=list,
        description="modules imported by the workers; their @jobd.task functions are served",
    )
    tasks: dict[str, str] = Field(
        default_factory=dict, description="task name → 'package.module:function' of a plain callable"
    )
    timeout: Duration = defaults.DEFAULT_TIMEOUT_SECONDS
    max_attempts: int = Field(defaults.DEFAULT_MAX_ATTEMPTS, ge=1, le=1000)
    backoff_base: Duration = defaults.DEFAULT_BACKOFF_BASE_SECONDS
    backoff_max: Duration = defaults.DEFAULT_BACKOFF_MAX_SECONDS
    max_tasks_per_worker: int = Field(defaults.DEFAULT_MAX_TASKS_PER_WORKER, ge=0)
    drain_timeout: Duration | None = None
    enabled: bool = True
    prefetch: int | None = Field(
        default=None, ge=0, le=1000,
        description=(
            "jobs claimed ahead of free workers (default: 4 per worker, more for short jobs; none under "
            "concurrency caps); 0 also stops handing short jobs to a worker ahead of time"
        ),
    )
    concurrency: int | None = Field(
        default=None, ge=1, description="most jobs of this daemon running at once across all hosts"
    )
    task_concurrency: dict[str, int] = Field(
        default_factory=dict, description="task name → most of its jobs running at once across all hosts"
    )
    shell: dict[str, ShellTaskSpec] = Field(
        default_factory=dict, description="task name → a command line run as a supervised subprocess"
    )
    # Memory recycling (jobd.workers.memory): RSS checked after each job, and during one.
    max_memory_mb: int = Field(defaults.DEFAULT_MAX_MEMORY_MB, ge=0, description="recycle a worker whose RSS passed this after a job (0: never)")
    max_memory_hard_mb: int = Field(defaults.DEFAULT_MAX_MEMORY_HARD_MB, ge=0, description="kill a worker whose RSS passes this during a job; the job is retried (0: never)")
    # Caps on what its tasks produce (``jobd.output_caps``); unset: the global setting of the same name.
    max_error_bytes: Size | None = Field(None, ge=MIN_CAP_BYTES, le=defaults.LIMIT_ERROR_BYTES)
    max_traceback_bytes: Size | None = Field(None, ge=MIN_CAP_BYTES, le=defaults.LIMIT_OUTPUT_BYTES)
    max_result_bytes: Size | None = Field(None, ge=MIN_CAP_BYTES, le=defaults.LIMIT_OUTPUT_BYTES)
    max_checkpoint_bytes: Size | None = Field(None, ge=MIN_CAP_BYTES, le=defaults.LIMIT_OUTPUT_BYTES)
    max_progress_message_bytes: Size | None = Field(None, ge=MIN_CAP_BYTES, le=defaults.LIMIT_PROGRESS_MESSAGE_BYTES)
    max_log_line_bytes: Size | None = Field(None, ge=MIN_CAP_BYTES, le=defaults.LIMIT_OUTPUT_BYTES)

    def output_caps(self) -> OutputCaps:
        """The caps on what this daemon's tasks produce (its own settings, else the defaults)."""
        return caps_from(self)

    @field_validator("modules")
    @classmethod
    def _modules_are_module_paths(cls, modules: list[str]) -> list[str]:
        for module in modules:
            if not MODULE_PATH_PATTERN.match(module):
                raise ValueError(f"{module!r} is not a module path such as 'myapp.tasks'")
        return modules

    @field_validator("tasks")
    @classmethod
    def _tasks_are_callable_paths(cls, tasks: dict[str, str]) -> dict[str, str]:
        for name, path in tasks.items():
            if not TASK_NAME_PATTERN.match(name):
                raise ValueError(f"{name!r} is not a valid task name")
            if not CALLABLE_PATH_PATTERN.match(path):
                raise ValueError(
                    f"task {name!r}: {path!r} is not a callable path such as 'myapp.tasks:send'"
                )
        return tasks


class WebConfig(Strict):
    """The ``[web]`` table: where ``jobd web`` listens and the tokens it accepts.

    Tokens may come from the environment instead (``JOBD_WEB_READ_TOKEN``,
    ``JOBD_WEB_ADMIN_TOKEN``), which keeps them out of a shared file.
    """

    bind: str = defaults.DEFAULT_WEB_BIND
    read_token: str | None = Field(default=None, min_length=defaults.WEB_MIN_TOKEN_LENGTH, description="lets a client read")
    admin_token: str | None = Field(default=None, min_length=defaults.WEB_MIN_TOKEN_LENGTH, description="lets a client read and act")

    @field_validator("bind")
    @classmethod
    def _host_port(cls, address: str) -> str:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{address!r} is not host:port such as '127.0.0.1:8686'")
        return address


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
