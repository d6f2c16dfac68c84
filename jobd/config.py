"""jobd.toml: where it is found, what it may contain, and how it is validated.

The whole file is validated before anything starts. Every problem is
reported with the file, the dotted key and the reason, and an invalid file
changes nothing — the same rule for ``jobd check``, ``jobd start`` and a
reload.
"""

from __future__ import annotations

import os
import tomllib
import zoneinfo
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from . import defaults
from .config_checks import STRICT, UNKNOWN_KEY_ERRORS, After, AtLeast
from .config_path import find_config_path  # noqa: F401  (imported from here too)
from .config_sections import (  # noqa: F401  (DaemonConfig, WebConfig and the value types are imported from here too)
    MIN_CAP_BYTES, OUTPUT_CAP_SETTINGS, DaemonConfig, Duration, ErrorCap, OutputCap, ProgressCap, Size, WebConfig,
    caps_from, host_port,
)
from .errors import ConfigError
from .migrations.settings import CheckedMigrations, MigrationsSettings  # noqa: F401  (MigrationsSettings: for type hints)
from .names import CALLABLE_PATH_PATTERN, MODULE_PATH_PATTERN, NAME_PATTERN, TASK_NAME_PATTERN  # noqa: F401
from .output_caps import OutputCaps
from .text_files import NotUtf8, read_utf8

if TYPE_CHECKING:
    from pydantic import TypeAdapter, ValidationError

    from .schedules import Schedule


def _supported_store(url: str) -> str:
    """Refuse a store jobd cannot open now (exit 2 from `jobd check`), not at `jobd start` (exit 3)."""
    scheme, separator, _rest = url.partition("://")
    if not separator or scheme.lower() not in defaults.SUPPORTED_STORE_SCHEMES:
        supported = ", ".join(f"{name}://" for name in defaults.SUPPORTED_STORE_SCHEMES)
        raise ValueError(f"{url!r} is not a supported store URL (supported: {supported})")
    from .store.url_options import check_store_options  # where a file is checked, not in a master handed its config

    check_store_options(url)
    return url


def _known_level(level: str) -> str:
    level = level.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return level


def _known_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone such as 'Europe/Warsaw'") from None
    return name


def _host_ports(servers: list[str]) -> list[str]:
    for server in servers:
        host_port(server)
    return servers


def _metrics_address(address: str | None) -> str | None:
    return None if address is None else host_port(address, "127.0.0.1:9187")


def _daemon_names(daemons: dict[str, DaemonConfig]) -> dict[str, DaemonConfig]:
    for name in daemons:
        if not NAME_PATTERN.match(name):
            raise ValueError(f"daemon name {name!r} must be lower-case letters, digits, '-' or '_'")
    return daemons


@dataclass(frozen=True)
class JobdConfig:
    """The validated contents of a jobd.toml. Paths are absolute.

    A plain frozen dataclass: only reading a file (``parse_config``) loads
    pydantic to check it, so a process handed a checked config holds none.
    """

    __pydantic_config__: ClassVar[dict[str, Any]] = STRICT

    store: Annotated[str, After(_supported_store)] = defaults.DEFAULT_STORE_URL
    memcached: Annotated[list[str], After(_host_ports)] = field(default_factory=list)
    socket: Path = Path(defaults.DEFAULT_SOCKET_NAME)
    pid_file: Path = Path(defaults.DEFAULT_PID_FILE_NAME)
    log_file: Path | None = None
    log_level: Annotated[str, After(_known_level)] = "INFO"
    timezone: Annotated[str, After(_known_timezone)] = "UTC"
    drain_timeout: Duration = defaults.DEFAULT_DRAIN_TIMEOUT_SECONDS
    poll_interval: Duration = defaults.DEFAULT_POLL_INTERVAL_SECONDS
    heartbeat_interval: Duration = defaults.HEARTBEAT_INTERVAL_SECONDS
    heartbeat_lease: Duration = defaults.HEARTBEAT_LEASE_SECONDS
    # daemons whose pools run on this host (default: all); $JOBD_RUN_DAEMONS overrides
    run_daemons: list[str] | None = None
    retention: Duration = 7 * 86400.0  # finished jobs older than this are pruned
    prune_interval: Duration = 300.0
    # submits hand jobs straight to idle local workers (jobd.handoff); $JOBD_HANDOFF overrides
    handoff: bool = True
    # directories added to sys.path to import task modules
    python_path: list[Path] = field(default_factory=list)
    daemons: Annotated[dict[str, DaemonConfig], After(_daemon_names)] = field(default_factory=dict)
    # folder of schedule files (*.toml); ignored if absent
    schedule_dir: Path | None = Path("schedules")
    # inline [schedules.entries.NAME] tables
    schedules: dict[str, Any] = field(default_factory=dict)
    migrations: CheckedMigrations | None = None  # per-tenant schema migrations
    web: WebConfig = field(default_factory=WebConfig)  # `jobd web`: bind address and tokens
    # Production (issue 7): metrics endpoint, log format, alert hook.
    metrics: Annotated[str | None, After(_metrics_address)] = None  # host:port of the Prometheus endpoint
    log_format: Literal["text", "json"] = "text"
    job_log_max_lines: Annotated[int, AtLeast(0)] = defaults.DEFAULT_JOB_LOG_MAX_LINES  # per job attempt (0: none)
    alert_command: str | None = None  # shell command run with a JSON event on stdin
    alert_timeout: Duration = defaults.DEFAULT_ALERT_TIMEOUT_SECONDS
    # Caps on what a task produces (``jobd.output_caps``; README "Limits on what a task can produce");
    # a daemon's own setting of the same name wins.
    max_error_bytes: ErrorCap = defaults.MAX_ERROR_BYTES
    max_traceback_bytes: OutputCap = defaults.MAX_TRACEBACK_BYTES
    max_result_bytes: OutputCap = defaults.MAX_RESULT_BYTES
    max_checkpoint_bytes: OutputCap = defaults.MAX_CHECKPOINT_BYTES
    max_progress_message_bytes: ProgressCap = defaults.MAX_PROGRESS_MESSAGE_BYTES
    max_log_line_bytes: OutputCap = defaults.MAX_LOG_LINE_BYTES

    # Where this config came from; set by load_config, not by the file.
    source: Path = field(default=Path("<memory>"), metadata={"exclude": True})

    def output_caps(self, daemon: str | None = None) -> OutputCaps:
        """The caps on what ``daemon``'s tasks produce (the global settings for None or an unknown daemon)."""
        settings = self.daemons.get(daemon) if daemon is not None else None
        return caps_from(settings if settings is not None else self)

    def daemons_here(self) -> list[str]:
        """The daemons whose worker pools run on this host (placement)."""
        from_env = os.environ.get("JOBD_RUN_DAEMONS")
        if from_env:
            wanted = [name.strip() for name in from_env.split(",") if name.strip()]
            for name in wanted:
                self.daemon(name)
            return wanted
        return list(self.run_daemons) if self.run_daemons is not None else list(self.daemons)

    @property
    def base_dir(self) -> Path:
        return self.source.parent

    def daemon(self, name: str) -> DaemonConfig:
        from .errors import UnknownDaemon

        try:
            return self.daemons[name]
        except KeyError:
            known = ", ".join(sorted(self.daemons)) or "none"
            raise UnknownDaemon(f"unknown daemon {name!r} (known daemons: {known})") from None

    def drain_timeout_for(self, daemon: str) -> float:
        own = self.daemons[daemon].drain_timeout
        return self.drain_timeout if own is None else own


def _daemons_inherit_caps(config: JobdConfig) -> JobdConfig:
    """A daemon that does not set a cap gets the global one: a daemon's settings are then all it needs."""
    inherited = {}
    for name, daemon in config.daemons.items():
        unset = {key: getattr(config, key) for key in OUTPUT_CAP_SETTINGS if getattr(daemon, key) is None}
        if unset:
            inherited[name] = replace(daemon, **unset)
    if not inherited:
        return config
    return replace(config, daemons={**config.daemons, **inherited})


def _run_daemons_known(config: JobdConfig) -> JobdConfig:
    for name in config.run_daemons or []:
        if name not in config.daemons:
            known = ", ".join(sorted(config.daemons)) or "none"
            raise ValueError(f"run_daemons: no daemon named {name!r} is configured (known: {known})")
    return config


#: The file as validated: its keys, then the rules that join them.
ValidatedFile = Annotated[JobdConfig, After(_daemons_inherit_caps), After(_run_daemons_known)]


@cache
def _adapter() -> TypeAdapter[JobdConfig]:
    """pydantic's validator for a whole file, built once per process (and only where a file is read)."""
    from pydantic import TypeAdapter

    return TypeAdapter(ValidatedFile)


def _validated(data: dict[str, Any], config_path: Path) -> JobdConfig:
    from pydantic import ValidationError

    try:
        return _adapter().validate_python({**data, "source": config_path})
    except ValidationError as error:
        raise _config_error(config_path, error) from None


def load_config(path: str | os.PathLike[str] | None = None, *, with_schedule: bool = True) -> JobdConfig:
    """Read and validate a jobd.toml; raise ``ConfigError`` naming file, key and reason.

    ``with_schedule=False`` leaves the schedule entries unread: for commands
    that only read or submit jobs, which neither need the schedule engine nor
    should refuse to show the queue because a schedule file is broken.
    """
    config_path = find_config_path(path)
    try:
        text = read_utf8(config_path)
    except NotUtf8 as error:
        raise ConfigError(str(config_path), None, str(error)) from None
    except FileNotFoundError:
        raise ConfigError(
            str(config_path), None, "no such file (pass --config or set JOBD_CONFIG)"
        ) from None
    except OSError as error:
        raise ConfigError(str(config_path), None, f"cannot read: {error.strerror}") from None
    return parse_config(text, config_path, with_schedule=with_schedule)


def parse_config(text: str, config_path: Path, *, with_schedule: bool = True) -> JobdConfig:
    """Validate the TOML ``text`` of ``config_path`` (pure apart from the time-zone database)."""
    try:
        data = tomllib.loads(text) | ({"handoff": switch} if (switch := os.environ.get(defaults.HANDOFF_ENV_VAR)) else {})
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(str(config_path), None, f"not valid TOML: {error}") from None
    config = _check_socket_path(_resolve_paths(_validated(data, config_path)))
    if with_schedule:
        load_schedule(config, text)  # an invalid schedule refuses the whole config
    return config


def _config_error(config_path: Path, error: ValidationError) -> ConfigError:
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        reason = item["msg"]
        if item["type"] in UNKNOWN_KEY_ERRORS:
            reason = "unknown key"
        reason = reason.removeprefix("Value error, ")
        problems.append((key, reason))
    first_key, first_reason = problems[0]
    if len(problems) > 1:
        rest = "; ".join(f"{key}: {reason}" for key, reason in problems[1:])
        first_reason = f"{first_reason} (also: {rest})"
    return ConfigError(str(config_path), first_key, first_reason)


def load_schedule(config: JobdConfig, text: str | None = None) -> "Schedule":
    """Every schedule entry of a config: its ``schedule_dir`` files plus inline ``[schedules]``.

    Raises ``ConfigError`` (file, line, entry, key, reason) for the first
    invalid entry, an entry name used twice, or an entry naming a daemon the
    config does not define. Task names are checked against the inventory by
    the caller, once task code has been imported.
    """
    from .schedules import Schedule, load_schedule_files, parse_schedule_table

    schedule = Schedule()
    if config.schedules:
        if text is None and config.source.exists():
            text = read_utf8(config.source)  # read (and found UTF-8) already by load_config
        schedule = parse_schedule_table(
            config.schedules, str(config.source), default_timezone=config.timezone, text=text, table_path="schedules"
        )
    if config.schedule_dir is not None and config.schedule_dir.is_dir():
        schedule = schedule.merged_with(load_schedule_files(config.schedule_dir, config.timezone))
    for entry in schedule.values():
        if entry.daemon not in config.daemons:
            known = ", ".join(sorted(config.daemons)) or "none"
            raise ConfigError(entry.location, f"entry '{entry.name}'.daemon", f"no daemon named '{entry.daemon}' is configured (known: {known})")
    return schedule


def _resolve_paths(config: JobdConfig) -> JobdConfig:
    """Make every path absolute relative to the config file's directory."""
    base = config.base_dir

    def absolute(path: Path) -> Path:
        return path if path.is_absolute() else (base / path).resolve()

    return replace(
        config,
        store=_resolve_sqlite_url(config.store, base),
        socket=absolute(config.socket),
        pid_file=absolute(config.pid_file),
        log_file=absolute(config.log_file) if config.log_file else None,
        python_path=[absolute(path) for path in config.python_path],
        schedule_dir=absolute(config.schedule_dir) if config.schedule_dir else None,
        migrations=(
            replace(config.migrations, folder=absolute(config.migrations.folder)) if config.migrations is not None else None
        ),
    )


def _resolve_sqlite_url(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str((base / url[len(prefix) :]).resolve())
    return url


def config_from_dict(data: dict[str, Any], source: Path) -> JobdConfig:
    """Build a validated config from already-parsed data (used by tests and tools)."""
    return _check_socket_path(_resolve_paths(_validated(data, source)))


def _check_socket_path(config: JobdConfig) -> JobdConfig:
    """A Unix socket path holds at most 107 bytes: say so now, not with a traceback at start."""
    length = len(os.fsencode(config.socket))
    if length > defaults.MAX_SOCKET_PATH_BYTES:
        raise ConfigError(
            str(config.source), "socket",
            f"{config.socket} is {length} bytes long; a Unix socket path holds at most {defaults.MAX_SOCKET_PATH_BYTES} (use a shorter folder)",
        )
    return config
