"""The `jobd` command: thin typer commands over library functions.

The commands live in modules by concern (``master_commands``,
``status_command``, ``jobs_commands``, ``trigger_command``, ``schedules``,
``migrate``, ``logs_command``, ``systemd_command``); this module only
assembles them, in the order ``jobd --help`` lists them. Starting the CLI
imports typer and the command modules, not the library behind them: each
command imports what it needs when it runs, so ``jobd status --json`` or
``jobd jobs`` pay for the config, the store and rich only as far as they use them.
"""

from __future__ import annotations

import typer

from . import jobs_commands, logs_command, master_commands, status_command, systemd_command, trigger_command
from . import batches as batch_commands, schedules as schedule_commands
from .migrate import migrate_app

app = typer.Typer(
    name="jobd",
    help="jobd — a background job daemon supervisor that replaces cron.\n\n"
    "Reads jobd.toml (--config, $JOBD_CONFIG, or ./jobd.toml).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command()(master_commands.check)
app.command()(master_commands.init)
app.command()(master_commands.start)
app.command()(master_commands.stop)
app.command()(master_commands.restart)
app.command()(master_commands.scale)
app.command()(master_commands.reload)
app.command()(status_command.status)
app.command()(jobs_commands.jobs)
app.command("job")(jobs_commands.job_detail)
app.command()(trigger_command.trigger)
app.command()(jobs_commands.cancel)
app.command()(jobs_commands.retry)
app.command()(master_commands.top)
app.command()(master_commands.web)
schedule_commands.register(app)
batch_commands.register(app)
app.add_typer(migrate_app, name="migrate", help="Per-tenant schema migrations behind snapshots (see docs/migrations.md).")
app.command("logs")(logs_command.logs)
app.add_typer(systemd_command.app, name="systemd")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
