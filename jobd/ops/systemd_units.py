"""The systemd units that run jobd on a server, rendered for an installation.

The units are text with three installation-specific values: the ``jobd``
executable, the config path and the service user. ``render_units`` fills
them in; ``systemd/`` in the repository holds the rendering for the default
values (a test keeps the two identical), and ``jobd systemd install``
writes the rendering for the running installation.

Why each setting is there is said in the unit itself, where an operator
reading ``systemctl cat jobd`` will see it.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

DEFAULT_EXECUTABLE = "/usr/local/bin/jobd"
DEFAULT_CONFIG = "/etc/jobd/jobd.toml"
DEFAULT_USER = "jobd"
DEFAULT_UNIT_DIR = "/etc/systemd/system"

# Hardening shared by both units: jobd needs the network (store, memcached),
# its own state, log and runtime directories, and nothing else of the host.
_HARDENING = """\
NoNewPrivileges=true
ProtectSystem=strict
ProtectHome=true
PrivateTmp=true
PrivateDevices=true
ProtectKernelTunables=true
ProtectKernelModules=true
ProtectKernelLogs=true
ProtectControlGroups=true
ProtectClock=true
ProtectHostname=true
RestrictSUIDSGID=true
RestrictRealtime=true
RestrictNamespaces=true
LockPersonality=true
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
SystemCallArchitectures=native
CapabilityBoundingSet=
UMask=0027
# Writable: /var/lib/jobd (SQLite store), /var/log/jobd, /run/jobd (control socket).
StateDirectory=jobd
LogsDirectory=jobd
"""

_SERVICE = """\
# jobd master: one per host. Installed by `jobd systemd install`.
[Unit]
Description=jobd background job supervisor (master and worker pools)
Documentation=https://github.com/jobd/jobd#running-under-systemd
Wants=network-online.target
After=network-online.target mariadb.service mysql.service memcached.service jobd-migrate.service

[Service]
# The master sends READY=1 once its pools are up, RELOADING=1/READY=1 around
# a reload, STOPPING=1 when it drains, and STATUS= for `systemctl status`.
Type=notify
NotifyAccess=main
User={user}
Group={user}
Environment=JOBD_CONFIG={config}
ExecStart={executable} start --foreground --config {config}
# SIGHUP: re-read jobd.toml without dropping jobs (an invalid file changes nothing).
ExecReload=/bin/kill -HUP $MAINPID
# SIGTERM to the master only: it stops claiming, lets running jobs finish up
# to drain_timeout and returns the rest to the queue. Workers must not get the
# SIGTERM themselves (they would die mid-job); whatever is left at
# TimeoutStopSec gets SIGKILL.
KillMode=mixed
KillSignal=SIGTERM
# Above the longest drain_timeout in jobd.toml (default 30s) plus ~15s to stop
# workers; raise it together with drain_timeout.
TimeoutStopSec=120
TimeoutStartSec=120
# The master pings from its main loop every WatchdogSec/2: a hung master is
# killed (SIGABRT) and, with Restart=on-failure, started again; its jobs are
# recovered from the store.
WatchdogSec=30
Restart=on-failure
RestartSec=5
# A worker killed by the kernel's OOM killer is jobd's to replace; the
# default (stop) would take every pool down with it.
OOMPolicy=continue
LimitNOFILE=65536
# The control socket lives in /run/jobd (mode 0660: add operators to the
# service group so `jobd status` works for them).
RuntimeDirectory=jobd
RuntimeDirectoryMode=0750
{hardening}
[Install]
WantedBy=multi-user.target
"""

_MIGRATE = """\
# jobd tenant migrations, run once per deploy: systemctl start jobd-migrate
# (then systemctl restart jobd). Installed by `jobd systemd install`.
[Unit]
Description=jobd tenant schema migrations (deploy-time, one-shot)
Documentation=https://github.com/jobd/jobd#running-under-systemd
Wants=network-online.target
After=network-online.target mariadb.service mysql.service
# Started in the same transaction as jobd.service, migrations go first.
Before=jobd.service

[Service]
Type=oneshot
User={user}
Group={user}
Environment=JOBD_CONFIG={config}
ExecStart={executable} migrate --config {config}
# Migrations of many tenants can take long; a failing tenant is restored from
# its snapshot and reported, and a re-run resumes. Never kill one midway.
TimeoutStartSec=infinity
KillMode=mixed
{hardening}"""

_WEB = """\
# jobd web: the live dashboard and HTTP API, a process of its own (never the
# master). Optional: systemctl enable --now jobd-web. Installed by `jobd systemd install`.
[Unit]
Description=jobd web dashboard and HTTP API
Documentation=https://github.com/jobd/jobd#web-dashboard-jobd-web
Wants=network-online.target
After=network-online.target jobd.service

[Service]
Type=exec
User={user}
Group={user}
Environment=JOBD_CONFIG={config}
# Tokens (JOBD_WEB_READ_TOKEN=…, JOBD_WEB_ADMIN_TOKEN=…) from a file only root
# can read; a non-loopback [web] bind refuses to start without them.
EnvironmentFile=-/etc/jobd/web.env
ExecStart={executable} web --config {config}
Restart=on-failure
RestartSec=5
# The master's control socket (/run/jobd belongs to jobd.service: not declared
# here, so stopping the dashboard never removes it).
ReadWritePaths=-/run/jobd
{hardening}
[Install]
WantedBy=multi-user.target
"""

_DROP_IN = """\
# Example drop-in: copy to /etc/systemd/system/jobd.service.d/credentials.conf
# (or run `systemctl edit jobd`) and keep only what you need.
[Service]
# Variables for task code, from a file only root can read (KEY=value lines;
# the '-' makes a missing file no error).
EnvironmentFile=-/etc/jobd/jobd.env
Environment=TZ=UTC
# systemd credentials: copied into a private directory only this service can
# read; task code finds them under $CREDENTIALS_DIRECTORY/<name>.
LoadCredential=smtp-password:/etc/jobd/credentials/smtp-password
# A ceiling for master and workers together (max_memory_mb in jobd.toml
# recycles single workers well before this).
MemoryMax=8G
"""


def render_units(
    executable: str = DEFAULT_EXECUTABLE, config: str = DEFAULT_CONFIG, user: str = DEFAULT_USER
) -> dict[str, str]:
    """Unit file name (relative to the unit directory) → text, for these values."""
    values = {"executable": executable, "config": config, "user": user, "hardening": _HARDENING}
    return {
        "jobd.service": _SERVICE.format(**values),
        "jobd-migrate.service": _MIGRATE.format(**values),
        "jobd-web.service": _WEB.format(**values),
        "jobd.service.d/credentials.conf.example": _DROP_IN,
    }


def running_executable() -> str:
    """The ``jobd`` of this installation (the venv's, if it runs from one)."""
    candidate = Path(sys.argv[0])
    if candidate.name == "jobd" and candidate.exists():
        return str(candidate.resolve())
    beside = Path(sys.executable).parent / "jobd"
    if beside.exists():
        return str(beside)
    return shutil.which("jobd") or DEFAULT_EXECUTABLE


def install_units(
    unit_dir: Path, *, executable: str, config: str, user: str, overwrite: bool = False
) -> list[Path]:
    """Write the units into ``unit_dir``; refuse to replace edited files unless ``overwrite``."""
    from ..errors import BadInput

    rendered = render_units(executable, config, user)
    targets = {unit_dir / name: text for name, text in rendered.items()}
    clashes = [path for path, text in targets.items() if path.exists() and path.read_text() != text]
    if clashes and not overwrite:
        raise BadInput(f"{', '.join(map(str, clashes))} already exist with other contents; pass --force to replace")
    for path, text in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o644)
    return list(targets)
