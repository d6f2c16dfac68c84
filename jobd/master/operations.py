"""What the control socket may ask of the master, and reloading its config.

Requests are read by the control server's thread and answered here, on the
loop's thread, between two turns: an operation never races the loop.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from ..catalogue import publish_after_reload
from ..status.compose import with_last_outcomes
from ..control.protocol import Request
from ..errors import JobdError
from ..checked_config import check_in_subprocess
from ..outcomes import CANCELLED_BY_OPERATOR, Ending, EndingKind
from ..workers.spec import WorkerSpec
from . import job_queries
from .status_answer import StatusAnswer

if TYPE_CHECKING:
    from .core import Master

log = logging.getLogger("jobd.master")

Operation = Callable[[dict[str, Any]], Any]


class Operations:
    def __init__(self, master: Master) -> None:
        self.master = master
        daemons = master.daemons
        self.table: dict[str, Operation] = {
            "ping": lambda _args: {"pong": True, "master": master.id},
            "status": lambda _args: master.status(),
            "wake": self._wake,
            "stop": self._stop,
            "reload": lambda _args: self.reload(),
            "schedules": lambda _args: master.ticker.describe(),
            "schedule_rows": self._schedule_rows,
            "activity": lambda _args: master.activity.view(),
            "cached_result": lambda args: master.activity.local.get_result(str(args.get("key", ""))),
            "start_daemons": self._claiming_after(daemons.start),
            "stop_daemons": daemons.stop,
            "restart_daemons": self._claiming_after(daemons.restart),
            "scale_daemon": self._claiming_after(daemons.scale),
            "daemon_status": self._daemon_status,
            "list_jobs": lambda args: job_queries.list_jobs(master.store, args),
            "show_job": lambda args: job_queries.show_job(master.store, args),
            "status_report": StatusAnswer(master),
        }

    def serve(self) -> None:
        """Answer every request the control socket received since the last turn.

        Finished attempts still gathered for a group commit are written first:
        an answer ("sms: stopped", a status) must never run ahead of the store,
        where the asker looks next.
        """
        requests = self.master.inbox.drain()
        if requests and self.master.endings.pending:
            self.master.store_link.guarded(self.master.endings.flush)
        for request, future in requests:
            self._answer(request, future)

    def _answer(self, request: Request, future: Future[Any]) -> None:
        operation = self.table.get(request.op)
        try:
            if operation is None:
                known = ", ".join(sorted(self.table))
                raise JobdError(f"unknown operation {request.op!r} (known: {known})")
            future.set_result(operation(request.args))
        except Exception as error:
            future.set_exception(error)

    def apply_cancel_requests(self) -> None:
        """Stop the jobs of ours an operator cancelled: a waiting one at once, a running one in its worker."""
        master = self.master
        for job_id in master.store.jobs.cancel_requests(master.id):
            for pool in master.pools.values():
                waiting = pool.withdraw(job_id)
                if waiting is not None:
                    master.endings.end(pool.daemon, [(waiting, Ending(EndingKind.CANCELLED, error=CANCELLED_BY_OPERATOR))])
                pool.cancel(job_id)

    def _wake(self, _args: dict[str, Any]) -> dict[str, Any]:
        self.master.dispatcher.claim_soon()
        self.apply_cancel_requests()
        return {"woken": True}

    def _stop(self, _args: dict[str, Any]) -> dict[str, Any]:
        self.master.begin_drain("stop requested")
        return {"stopping": True, "pid": os.getpid()}

    def _claiming_after(self, operation: Operation) -> Operation:
        """An operation after which the dispatcher looks for jobs at once (new workers, started pool)."""

        def run(args: dict[str, Any]) -> Any:
            result = operation(args)
            self.master.dispatcher.claim_soon()
            return result

        return run

    def _daemon_status(self, args: dict[str, Any]) -> dict[str, Any]:
        """`jobd status DAEMON`: the daemon's status plus its queue and recent failures."""
        master = self.master
        pool = master.pool(str(args.get("daemon")))
        counts = master.store.jobs.counts().get(pool.daemon, {})
        status = master.daemons.status(pool.daemon, {**pool.snapshot(), "counts": counts})
        summary = {"running": True, **master.status()["master"]}
        ticks = [
            {"entry": row["name"], "next": datetime.datetime.fromtimestamp(row["next"][0]).strftime("%Y-%m-%d %H:%M:%S")}
            for row in master.ticker.describe()
            if row["daemon"] == pool.daemon and row["next"] and not row["paused"]
        ]
        return {"master": summary, "daemon": {**status, **master.daemons.detail(pool.daemon), "next_ticks": ticks}}

    def _schedule_rows(self, _args: dict[str, Any]) -> dict[str, Any]:
        """`jobd schedules`: every entry with its last outcome, read on this master's store.

        ``{"rows": None}`` while the store is down (each read would hold this loop for a read
        timeout): the command then reads the store itself, as when no master runs.
        """
        master = self.master
        if not master.store_health.available:
            return {"rows": None}
        return {"rows": with_last_outcomes(master.ticker.describe(), master.store.jobs.states_of)}

    # -- reloading --------------------------------------------------------

    def reload(self) -> dict[str, Any]:
        """Re-read the config; apply it only if all of it is valid, without dropping jobs."""
        master = self.master
        master.observers.reloading()
        try:
            return self._reload()
        finally:
            master.observers.reloaded(master, master.config)

    def _reload(self) -> dict[str, Any]:
        master = self.master
        checked = check_in_subprocess(master.config.source)  # pydantic and task code stay out of the master
        config, schedule, inventory = checked.config, checked.schedule, checked.inventory
        if config.store != master.config.store or config.socket != master.config.socket:
            raise JobdError("store and socket cannot change on reload; restart the master")
        old = master.config
        master.config, master.inventory, master.schedule = config, inventory, schedule
        master.ticker.set_schedule(schedule)
        here = set(config.daemons_here())
        for name, settings in config.daemons.items():
            if name not in here:
                continue
            pool = master.pools.get(name)
            if pool is None:
                master.create_pool(name, settings).maintain()
                continue
            pool.settings = settings
            pool.size = settings.workers if settings.enabled else 0
            pool.spec = WorkerSpec(config=config, daemon=name, owner=master.id, schedule=schedule)
            if old.daemons.get(name) != settings or old.python_path != config.python_path:
                pool.replace_all()
        for name, pool in master.pools.items():
            if name not in here:
                pool.size = 0
        master.daemons.sync(config, master.pools)
        publish_after_reload(master.store, config, inventory)
        log.info("config reloaded from %s", config.source)
        master.dispatcher.claim_soon()
        return {"reloaded": True, "daemons": sorted(config.daemons), "schedules": sorted(schedule)}
