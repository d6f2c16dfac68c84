"""The few settings a quick command reads, without building the config models every time.

``jobd jobs``, ``jobd job``, ``jobd trigger`` and ``jobd status`` need a
handful of keys — the control socket, the store URL, the daemon names. Building
the config's validation (pydantic) for them costs a tenth of a second of every command, about
as long as the rest of the command. So the file is validated in full as
before, and the keys such commands read are remembered, keyed by a
fingerprint of everything the validation depended on: the file's path and
bytes, ``$JOBD_HANDOFF``, and the modules that define the config. The next
command reading the same file finds its digest and builds nothing.

Nothing here judges a config: a file the full validation has not accepted
has no digest, so it is validated (and its errors reported) exactly as by
``jobd.config.load_config``. The defaults and the path resolution are the
models' own, since a digest is only ever made from a validated ``JobdConfig``.
The digests live in ``$XDG_CACHE_HOME/jobd`` (else ``~/.cache/jobd``), one
small file each, readable only by their owner (a store URL may hold a
password); where that folder cannot be written, every command validates.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import defaults
from .config_path import find_config_path

if TYPE_CHECKING:
    from .config import JobdConfig
    from .rate_limits import RateLimits

#: Bumped when ``ConfigDigest`` changes shape: older digests are then ignored.
DIGEST_FORMAT = 4
#: Digests kept; past this, the least recently written go (configs edited or thrown away).
MAX_DIGESTS = 64
#: The modules whose code decides what a valid config is and what it resolves to
#: (relative to this package; ``jobd.migrations`` is the ``migrations`` folder beside it).
VALIDATING_MODULES = (
    "config.py", "config_sections.py", "config_checks.py", "config_path.py", "config_digest.py", "defaults.py",
    "names.py", "durations.py", "output_caps.py", "rate_limit_settings.py", "rate_limits.py", "shelltask.py",
    "../migrations/settings.py", "../migrations/snapshot_mode.py",
    # The store URL's options, and the driver's arguments the digest records for them:
    "store/url_options.py", "store/engine.py", "store/driver_sql.py",
)


@dataclass(frozen=True)
class DaemonFacts:
    """What ``jobd status`` with no master shows of a configured daemon (``jobd.status.compose``)."""

    workers: int
    enabled: bool
    #: Its rate limits (``RateLimits.rates()``): limited key → [per second, burst]; empty when none.
    rates: dict[str, list[float]]

    @classmethod
    def of(cls, daemon: Any) -> DaemonFacts:
        """The facts of a ``DaemonConfig``."""
        rates = daemon.rate_limits().rates()
        return cls(int(daemon.workers), bool(daemon.enabled), {key: [rate.per_second, rate.burst] for key, rate in rates.items()})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DaemonFacts:
        rates = {str(key): [float(per_second), float(burst)] for key, (per_second, burst) in data["rates"].items()}
        return cls(int(data["workers"]), bool(data["enabled"]), rates)

    def rate_limits(self) -> RateLimits:
        """The limits, as ``DaemonConfig.rate_limits`` gives them."""
        from .rate_limits import DAEMON_KEY, Rate, RateLimits

        rates = {key: Rate(per_second, burst) for key, (per_second, burst) in self.rates.items()}
        return RateLimits(rates.pop(DAEMON_KEY, None), rates)


@dataclass(frozen=True)
class TaskCode:
    """Where a daemon's Python tasks come from, for a submit to check an intent by importing them
    when no task catalogue was published yet (``jobd.ops.quick_submit``).

    ``elsewhere``: task names that code does not decide — shell tasks and the
    migration task, which the full submit knows from the config (a schedule's
    shell tasks are named ``shell:…``, also left to it).
    """

    modules: list[str]
    tasks: dict[str, str]
    elsewhere: list[str]

    @classmethod
    def of(cls, config: JobdConfig, daemon: str) -> TaskCode:
        settings = config.daemons[daemon]
        elsewhere = sorted(settings.shell)
        if config.migrations is not None and config.migrations.daemon == daemon:
            from .migrations.task import MIGRATE_TASK

            elsewhere.append(MIGRATE_TASK)
        return cls(list(settings.modules), dict(settings.tasks), elsewhere)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskCode:
        return cls([str(module) for module in data["modules"]], {str(name): str(path) for name, path in data["tasks"].items()},
                   [str(name) for name in data["elsewhere"]])


@dataclass(frozen=True)
class StatusFacts:
    """The settings a status is composed from, as ``JobdConfig`` has them (``jobd.status.compose.StatusSettings``)."""

    store: str
    daemons: dict[str, DaemonFacts]
    heartbeat_lease: float
    memcached: list[str]


@dataclass(frozen=True)
class ConfigDigest:
    """The settings of a validated jobd.toml that the quick commands read (paths absolute)."""

    source: Path
    store: str
    socket: Path
    daemons: tuple[str, ...]
    heartbeat_lease: float
    handoff: bool
    #: ``settings_key`` of the validated config: a master asked to answer for this file compares it with its own.
    settings: str
    #: How the driver connects to the store (``jobd.store.driver_sql.DriverTarget`` as JSON); None if unknown.
    driver: dict[str, Any] | None
    daemon_facts: dict[str, DaemonFacts]
    memcached: list[str]
    #: Directories task modules are imported from, and each daemon's task code (``TaskCode``).
    python_path: list[str]
    task_code: dict[str, TaskCode]

    @classmethod
    def of(cls, config: JobdConfig) -> ConfigDigest:
        return cls(
            source=config.source, store=config.store, socket=config.socket,
            daemons=tuple(config.daemons), heartbeat_lease=float(config.heartbeat_lease), handoff=bool(config.handoff),
            settings=settings_key(config), driver=_driver_of(config.store),
            daemon_facts={name: DaemonFacts.of(daemon) for name, daemon in config.daemons.items()},
            memcached=list(config.memcached), python_path=[str(path) for path in config.python_path],
            task_code={name: TaskCode.of(config, name) for name in config.daemons},
        )

    def status_facts(self) -> StatusFacts:
        return StatusFacts(self.store, dict(self.daemon_facts), self.heartbeat_lease, list(self.memcached))

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "format": DIGEST_FORMAT, "source": str(self.source), "socket": str(self.socket)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConfigDigest:
        driver = data["driver"]
        return cls(
            source=Path(data["source"]), store=str(data["store"]), socket=Path(data["socket"]),
            daemons=tuple(str(name) for name in data["daemons"]), heartbeat_lease=float(data["heartbeat_lease"]),
            handoff=bool(data["handoff"]), settings=str(data["settings"]), driver=dict(driver) if driver is not None else None,
            daemon_facts={str(name): DaemonFacts.from_json(facts) for name, facts in data["daemon_facts"].items()},
            memcached=[str(server) for server in data["memcached"]], python_path=[str(path) for path in data["python_path"]],
            task_code={str(name): TaskCode.from_json(code) for name, code in data["task_code"].items()},
        )


def settings_key(config: JobdConfig) -> str:
    """A fingerprint of every validated setting (not the file's bytes: its comments and layout do not count).

    Two processes that validated the same file in the same environment get
    the same key; a master compares it with an asker's (``status_report``) to
    answer only for the config the asker would have read itself.
    """
    from .config_checks import as_json_data

    data = json.dumps(as_json_data(config), sort_keys=True, default=str)
    return hashlib.sha256(data.encode()).hexdigest()


def _driver_of(url: str) -> dict[str, Any] | None:
    """The store's ``DriverTarget`` as JSON, worked out once by SQLAlchemy; None where it cannot be.

    A command that submits reads it here instead of loading SQLAlchemy to
    work it out (``jobd.ops.quick_submit``). A URL SQLAlchemy refuses, or
    arguments that are not plain data, leave it out: such a command then
    takes the full path, which reports the problem.
    """
    from .store.driver_sql import target_as_json
    from .store.engine import driver_target

    try:
        data = target_as_json(driver_target(url))
        return dict(json.loads(json.dumps(data)))  # plain JSON data only (a value that is not raises here)
    except Exception:  # best effort: a digest never fails a command; the full path reports what is wrong
        return None


def config_digest(path: str | os.PathLike[str] | None = None) -> ConfigDigest:
    """The digest of the config at ``path`` (as ``load_config`` finds it), validating it if it is new.

    Raises ``ConfigError`` exactly as ``load_config(path, with_schedule=False)`` does.
    """
    config_path = find_config_path(path)
    try:
        text = config_path.read_bytes()
    except OSError:
        text = None  # the full load names the problem
    if text is not None:
        key = fingerprint(config_path, text)
        remembered = _read(key)
        if remembered is not None:
            return remembered
    from .config import load_config

    config = load_config(config_path, with_schedule=False)
    digest = ConfigDigest.of(config)
    if text is not None and config_path.read_bytes() == text:  # remember only what was validated
        _write(fingerprint(config_path, text), digest)
    return digest


def fingerprint(config_path: Path, text: bytes) -> str:
    """What a validation's outcome depends on: the file, the environment it reads, the validating code."""
    package = Path(__file__).parent
    hasher = hashlib.sha256(f"{DIGEST_FORMAT}\0{config_path}\0".encode())
    hasher.update(text)
    hasher.update(f"\0{os.environ.get(defaults.HANDOFF_ENV_VAR, '')}\0".encode())
    for name in VALIDATING_MODULES:
        try:
            status = (package / name).stat()
        except OSError:
            continue
        hasher.update(f"{name}:{status.st_mtime_ns}:{status.st_size}\0".encode())
    return hasher.hexdigest()


def digest_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "jobd" / "config-digests"


def _read(key: str) -> ConfigDigest | None:
    try:
        data = json.loads((digest_folder() / f"{key}.json").read_text(encoding="utf-8"))
        if data.get("format") != DIGEST_FORMAT:
            return None
        return ConfigDigest.from_json(data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # absent or unreadable: validate


def _write(key: str, digest: ConfigDigest) -> None:
    folder = digest_folder()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".digest-")  # mode 0600
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(digest.to_json(), file)
            os.replace(temporary, folder / f"{key}.json")  # readers see a whole digest or none
        except BaseException:
            os.unlink(temporary)
            raise
        _forget_oldest(folder)
    except OSError:
        pass  # a cache that cannot be written only costs the next command a validation


def _forget_oldest(folder: Path) -> None:
    digests = sorted(folder.glob("*.json"), key=lambda path: path.stat().st_mtime_ns)
    for path in digests[:-MAX_DIGESTS]:
        path.unlink(missing_ok=True)
