"""Chaos soak: three masters on one MariaDB store, killed, starved and cut at random; did any job suffer?

Set-up (all of it the soak's own, removed afterwards): a fresh MariaDB
database reached through a TCP proxy (tests/faults/tcp_proxy.py), a temporary
folder, and three masters — separate processes, each with its own folder
and control socket, like three hosts — serving the daemon ``work`` (a few
workers each, and a 1-second schedule entry), two of them also the daemon
``poison``.

While it runs, the soak submits a steady stream of short jobs
(``jobd.submit`` from this process) and a few poison jobs (a task raising
``ValueError("E" * 100_000)``), and at random — seeded, the seed printed —

* kills a master with ``kill -9 PID`` (its pid alone, never the group) and
  restarts it at once or after a short pause;
* kills a worker with SIGKILL;
* cuts the store: the proxy refuses every connection for a few seconds,
  then heals.

A master that exits by itself is restarted a second later (as systemd
would). Every task run appends start, beats and end to an execution log
(bench/chaos_tasks.py). At the end the soak stops injecting, waits (bounded)
for every job to finish, stops every process it started (by pid), looks for
processes of its masters left behind, and prints:

* jobs submitted, succeeded, dead (poison jobs apart), **lost** (acknowledged
  by ``submit`` or fired by the schedule, never finished);
* jobs that **ran in two processes at once** (overlapping runs of one job id);
* schedule ticks **fired twice** or **missed** (fire keys in the store against
  every second of the run; the entry is ``catch_up``, so after a cut every
  tick must still fire);
* **orphan processes** left, and workers still alive 1 s after their master's
  ``kill -9``;
* the **time to recover after each cut**: from its end to the first claim
  the store recorded after it, and to the first start of a job created after
  it (a job prefetched before the cut proves nothing).

Exit status 1 when a job was lost, ran twice at once, or a tick fired twice;
2 when the soak could not run (no MariaDB, a master that would not start); 3 when the watchdog (duration +
120 s) had to end it. Every loop is bounded.

    python bench/chaos.py                 # 180 s of chaos
    python bench/chaos.py --quick         # CI: 75 s of chaos, ~2 minutes in all
    python bench/chaos.py --duration 300 --seed 42
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

import pymysql  # noqa: E402

import chaos_analysis as analysis  # noqa: E402
from chaos_cluster import Master, kill_leftovers, processes_of, stop_all, write_config  # noqa: E402
from tests.faults.tcp_proxy import TcpProxy  # noqa: E402

MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
TICK_ENTRY = "chaos-tick"
TICK_POLICY = {"policy": "catch_up", "grace": 5.0, "max_catch_up": 1000}  # as in chaos_cluster.write_config
FINAL = ("succeeded", "dead", "cancelled")
WATCHDOG_EXTRA_SECONDS = 120.0
CUT_MARGIN_SECONDS = 10.0  # no store cut begins later than this before the faults end…
CUT_SPACING_SECONDS = 8.0  # …or sooner than this after the previous one healed: time to see the recovery


@dataclass(frozen=True)
class Sizes:
    duration: float  # seconds of injected faults
    settle_timeout: float  # at most this many seconds, after the faults, for every job to finish…
    settle_stall: float  # …or until no job has finished for this long (nothing is moving: the rest is stuck)
    submit_interval: float  # one job submitted every this many seconds
    job_seconds: tuple[float, float]  # a job's run time, uniform in this range…
    long_jobs: float  # …except this share of the jobs, which run long_job_seconds: a master kill -9 catches them running
    long_job_seconds: tuple[float, float]
    event_gap: tuple[float, float]  # seconds between two faults
    cut_seconds: tuple[float, float]  # how long a store cut lasts
    restart_pause: tuple[float, float]  # a killed master is restarted after this long (half the time: at once)
    poison_at: tuple[float, ...]  # fractions of the duration at which a poison job is submitted
    workers: int  # workers of ``work`` per master
    heartbeat_lease: float
    stop_timeout: float  # SIGTERM → SIGKILL for the masters at the end
    start_timeout: float  # the three masters must answer within this


FULL = Sizes(
    # 4 jobs/s of 0.36 s on average keep 1.4 workers busy: one master alone (2 workers) keeps up.
    duration=180, settle_timeout=80, settle_stall=20, submit_interval=0.25, job_seconds=(0.05, 0.3), long_jobs=0.1,
    long_job_seconds=(1.5, 2.5), event_gap=(2.0, 6.0),
    cut_seconds=(2.0, 6.0), restart_pause=(0.5, 4.0), poison_at=(0.1, 0.3, 0.5, 0.7), workers=2,
    heartbeat_lease=8, stop_timeout=12, start_timeout=30,
)
QUICK = replace(FULL, duration=75, settle_timeout=50, poison_at=(0.15, 0.4, 0.65))


@dataclass
class Record:
    """What happened during the run, as the soak saw it (wall-clock epoch times)."""

    acknowledged: dict[int, str] = field(default_factory=dict)  # job id → "work" | "poison"
    submit_errors: Counter[str] = field(default_factory=Counter)
    cuts: list[tuple[float, float]] = field(default_factory=list)
    master_kills: int = 0
    immediate_restarts: int = 0
    worker_kills: int = 0
    worker_kill_misses: int = 0  # no worker to kill found
    survivors: list[tuple[str, int]] = field(default_factory=list)  # (killed incarnation, its processes alive 1 s later)
    unexpected_exits: Counter[str] = field(default_factory=Counter)  # "m1 exit 5" → count
    killed_at: dict[str, float] = field(default_factory=dict)  # master incarnation → time of its kill -9
    events: list[str] = field(default_factory=list)


class Soak:
    def __init__(self, sizes: Sizes, seed: int, root: Path, database: str, proxy: TcpProxy) -> None:
        self.sizes = sizes
        self.seed = seed
        self.root = root
        self.database = database
        self.proxy = proxy
        self.token = secrets.token_hex(8)
        self.execution_log = root / "execution.log"
        self.record = Record()
        self.began = time.monotonic()
        self.masters = [
            Master(f"m{index}", root / f"m{index}", daemons, self.token, self.execution_log)
            for index, daemons in enumerate(["work,poison", "work,poison", "work"])
        ]
        for master in self.masters:
            write_config(master.folder, proxy.url(database), BENCH, workers=sizes.workers, heartbeat_lease=sizes.heartbeat_lease)
        self._pending_survivor_checks: list[tuple[float, str]] = []
        self.settle_note = ""
        self.ending = threading.Event()  # set by the clean-up (watchdog, SIGTERM): start no master any more

    # -- the log of events ---------------------------------------------------------

    def event(self, text: str) -> None:
        line = f"t+{time.monotonic() - self.began:6.1f}s {text}"
        self.record.events.append(line)
        print(line, file=sys.stderr, flush=True)

    # -- masters ---------------------------------------------------------------------

    def start_masters(self) -> None:
        for master in self.masters:
            master.start()
        deadline = time.monotonic() + self.sizes.start_timeout
        while not all(master.answers() for master in self.masters):
            for master in self.masters:
                if not master.running():
                    output = (master.folder / "master.out").read_text(errors="replace").splitlines()[-15:]
                    raise RuntimeError(f"master {master.name} exited with {master.process.returncode if master.process else '?'} "
                                       f"at start; the end of {master.folder / 'master.out'}:\n" + "\n".join(output))
            if time.monotonic() > deadline:
                raise RuntimeError(f"the masters did not answer within {self.sizes.start_timeout:.0f}s")
            time.sleep(0.2)
        self.event("3 masters up: " + ", ".join(f"{m.name} pid {m.pid} ({m.daemons})" for m in self.masters))

    def supervise(self) -> None:
        """Restart masters due for it; note (and schedule a restart of) masters that exited by themselves."""
        now = time.monotonic()
        for master in self.masters:
            code = master.note_exit()
            if code is not None:
                self.record.unexpected_exits[f"{master.name} exit {code}"] += 1
                self.event(f"master {master.label} (pid {master.pid}) exited by itself with {code}; restart in 1s")
                master.restart_at = now + 1.0
            if master.restart_at is not None and now >= master.restart_at and not self.ending.is_set():
                master.start()
                self.event(f"master {master.label} started (pid {master.pid})")
        for due, label in [check for check in self._pending_survivor_checks if check[0] <= now]:
            self._pending_survivor_checks.remove((due, label))
            alive = [p for p in processes_of(self.token) if p.master == label]
            self.record.survivors.append((label, len(alive)))
            if alive:
                self.event(f"1s after kill -9 of {label}: {len(alive)} of its processes alive "
                           f"({', '.join(f'pid {p.pid} {p.role}, parent {p.ppid}' for p in alive)})")

    # -- faults --------------------------------------------------------------------------

    def kill_master(self, rng: random.Random) -> None:
        running = [master for master in self.masters if master.running() and master.restart_at is None]
        if not running:
            return
        master = rng.choice(running)
        label = master.label
        pid = master.kill_9()
        self.record.killed_at[label] = time.time()
        immediate = rng.random() < 0.5
        pause = 0.0 if immediate else rng.uniform(*self.sizes.restart_pause)
        self.record.master_kills += 1
        self.record.immediate_restarts += immediate
        master.restart_at = time.monotonic() + pause
        self._pending_survivor_checks.append((time.monotonic() + 1.0, label))
        self.event(f"kill -9 master {label} (pid {pid}); restart in {pause:.1f}s")
        if immediate:
            self.supervise()

    def kill_worker(self, rng: random.Random) -> None:
        running = [master for master in self.masters if master.running()]
        if not running:
            return
        master = rng.choice(running)
        workers = master.worker_pids()
        busy = [pid for pid, state in workers if state == "busy"]
        candidates = busy if busy and rng.random() < 0.7 else [pid for pid, _state in workers]
        if not candidates:  # the master does not answer: find its workers in /proc (children of its fork server)
            candidates = [p.pid for p in processes_of(self.token)
                          if p.master == master.label and p.pid != master.pid and p.ppid != master.pid
                          and p.role == "worker or fork server"]
        if not candidates:
            self.record.worker_kill_misses += 1
            self.event(f"no worker of {master.label} to kill")
            return
        pid = rng.choice(sorted(candidates))
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            self.record.worker_kill_misses += 1
            return
        self.record.worker_kills += 1
        self.event(f"kill -9 worker {pid} of {master.label}")

    def cut_store(self, rng: random.Random) -> float:
        seconds = rng.uniform(*self.sizes.cut_seconds)
        self.proxy.refuse()
        self.event(f"store cut: every connection refused for {seconds:.1f}s")
        return seconds

    # -- the run --------------------------------------------------------------------------

    def submitter(self, stop: threading.Event, rng: random.Random, poison_at: list[float]) -> None:
        """Submit one job every ``submit_interval`` (poison jobs at their times) until ``stop``."""
        import jobd

        configs = [str(master.config) for master in self.masters]
        count = 0
        next_at = time.monotonic()
        hard_stop = time.monotonic() + self.sizes.duration + 30
        while not stop.is_set() and time.monotonic() < hard_stop:
            poison = bool(poison_at) and time.monotonic() >= poison_at[0]
            length = self.sizes.long_job_seconds if rng.random() < self.sizes.long_jobs else self.sizes.job_seconds
            daemon, task, args = ("poison", "chaos.poison", {}) if poison else (
                "work", "chaos.work", {"seconds": round(rng.uniform(*length), 3)})
            try:
                job_id = jobd.submit(daemon, task, args, config=configs[count % len(configs)])
            except Exception as error:  # noqa: BLE001 - a refused submit is not acknowledged: count it
                self.record.submit_errors[type(error).__name__] += 1
            else:
                self.record.acknowledged[job_id] = "poison" if poison else "work"
                if poison:
                    poison_at.pop(0)
                    self.event(f"poison job {job_id} submitted")
            count += 1
            next_at += self.sizes.submit_interval
            stop.wait(max(0.0, next_at - time.monotonic()))

    def run(self) -> int:
        sizes = self.sizes
        rng = random.Random(self.seed)
        self.start_masters()
        window_start = time.time()
        began = time.monotonic()
        inject_end = began + sizes.duration
        stop = threading.Event()
        poison_at = [began + fraction * sizes.duration for fraction in sizes.poison_at]
        thread = threading.Thread(target=self.submitter, args=(stop, random.Random(self.seed + 1), poison_at),
                                  name="submitter", daemon=True)
        thread.start()
        next_event = began + rng.uniform(*sizes.event_gap)
        cut_until: float | None = None
        cut_began = 0.0
        while time.monotonic() < inject_end:
            self.supervise()
            now = time.monotonic()
            if cut_until is not None and now >= cut_until:
                self.proxy.heal()
                self.record.cuts.append((cut_began, time.time()))
                self.event("store healed")
                cut_until = None
            if now >= next_event:
                # no cut in the last seconds: the recovery after it is measured while jobs are still submitted
                may_cut = (cut_until is None and now + sizes.cut_seconds[1] + CUT_MARGIN_SECONDS < inject_end
                           and (not self.record.cuts or time.time() - self.record.cuts[-1][1] >= CUT_SPACING_SECONDS))
                kinds = ["master"] * 3 + ["worker"] * 4 + (["cut"] * 3 if may_cut else [])
                kind = rng.choice(kinds)
                if kind == "master":
                    self.kill_master(rng)
                elif kind == "worker":
                    self.kill_worker(rng)
                else:
                    cut_began = time.time()
                    cut_until = time.monotonic() + self.cut_store(rng)
                next_event = time.monotonic() + rng.uniform(*sizes.event_gap)
            time.sleep(0.05)
        if cut_until is not None:
            self.proxy.heal()
            self.record.cuts.append((cut_began, time.time()))
            self.event("store healed (end of faults)")
        self.event("faults over; submits stop; every master restarted")
        stop.set()
        thread.join(timeout=20)
        for master in self.masters:
            if master.restart_at is not None:
                master.restart_at = time.monotonic()
        settle_deadline = time.monotonic() + sizes.settle_timeout
        settle_began = time.time()
        unfinished = self.unfinished(before=settle_began)
        last_progress = time.monotonic()
        while unfinished and time.monotonic() < settle_deadline and time.monotonic() - last_progress < sizes.settle_stall:
            time.sleep(1.0)
            self.supervise()
            still = self.unfinished(before=settle_began)
            if len(still) < len(unfinished):
                last_progress = time.monotonic()
            unfinished = still
        window_end = time.time() - 3.0  # a tick due later may not have fired yet
        why = ("" if not unfinished else f" (none finished in the last {sizes.settle_stall:.0f}s)"
               if time.monotonic() - last_progress >= sizes.settle_stall else " (still finishing some at the time limit)")
        self.settle_note = why
        self.event(f"settled after {time.time() - settle_began:.0f}s: {len(unfinished)} job(s) unfinished{why}; stopping the masters")
        stopped = stop_all(self.masters, sizes.stop_timeout)
        for name, how in stopped.items():
            self.event(f"master {name}: {how}")
        leftovers = kill_leftovers(self.token, grace=3.0)
        for process in leftovers:
            self.event(f"left behind: pid {process.pid} ({process.role}, of {process.master}, parent {process.ppid}): {process.command[:100]}")
        return self.report(window_start, window_end, settle_began, stopped, leftovers)

    # -- the verdict ------------------------------------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        connection = pymysql.connect(**MARIADB, database=self.database, connect_timeout=5, read_timeout=30)
        try:
            with connection.cursor(pymysql.cursors.DictCursor) as cursor:
                cursor.execute(
                    "SELECT id, task, state, owner, attempts, fire_key, created_at, started_at, LENGTH(error) AS error_length,"
                    " LEFT(error, 160) AS error FROM jobd_jobs"
                )
                return list(cursor.fetchall())
        finally:
            connection.close()

    def unfinished(self, *, before: float) -> list[int]:
        """Acknowledged jobs, and jobs created before ``before``, not in a final state (read directly, not through the proxy)."""
        try:
            rows = self.rows()
        except pymysql.MySQLError:
            return [-1]
        states = {int(row["id"]): row["state"] for row in rows}
        waiting = [job for job in self.record.acknowledged if states.get(job) not in FINAL]
        waiting += [int(row["id"]) for row in rows
                    if row["state"] not in FINAL and int(row["id"]) not in self.record.acknowledged
                    and float(row["created_at"] or 0) < before]
        return waiting

    def report(self, window_start: float, window_end: float, settle_began: float,
               stopped: dict[str, str], leftovers: list[Any]) -> int:
        record = self.record
        rows = self.rows()
        by_id = {int(row["id"]): row for row in rows}
        lines = self.execution_log.read_text().splitlines() if self.execution_log.exists() else []
        runs, malformed = analysis.parse_execution_log(lines)
        overlaps = analysis.overlapping_runs(runs)
        outliving = analysis.runs_outliving_their_master(runs, record.killed_at)
        superseded = analysis.superseded_runs(runs)
        stale = {run.token for run in superseded}
        ticks = analysis.check_ticks(
            [row["fire_key"] for row in rows if row["fire_key"]], TICK_ENTRY, (window_start + 1.0, window_end),
            outages=record.cuts, **TICK_POLICY,  # type: ignore[arg-type]
        )
        created = {job_id: float(row["created_at"] or 0) for job_id, row in by_id.items()}
        recoveries = analysis.recovery_times(
            record.cuts, [(run.start, created[run.job_id]) for run in runs if run.job_id in created], window_end + 3.0)
        claimed = [float(row["started_at"]) for row in rows if row["started_at"] is not None]
        claims = analysis.recovery_times(record.cuts, [(moment, moment) for moment in claimed], window_end + 3.0)

        work = [job for job, kind in record.acknowledged.items() if kind == "work"]
        poison = [job for job, kind in record.acknowledged.items() if kind == "poison"]
        tick_jobs = [job for job, row in by_id.items() if row["task"] == "chaos.tick"]
        state_of = {job: (by_id[job]["state"] if job in by_id else "missing") for job in by_id.keys() | record.acknowledged.keys()}
        lost_work = [job for job in work if state_of[job] not in FINAL]
        lost_poison = [job for job in poison if state_of[job] not in FINAL]
        lost_ticks = [job for job in tick_jobs if state_of[job] not in FINAL and created[job] < settle_began]
        lost = lost_work + lost_poison + lost_ticks
        owner_label = {pid: label for master in self.masters for pid, label in master.pid_labels.items()}

        def owned_by(job: int) -> str:
            owner = str(by_id[job]["owner"] or "") if job in by_id else ""
            pid = owner.split(":")[1] if owner.count(":") == 2 else ""
            return owner_label.get(int(pid), owner) if pid.isdigit() else (owner or "nobody")

        dead_work = [job for job in work + tick_jobs if state_of[job] == "dead"]
        stored_unacknowledged = [job for job, row in by_id.items() if row["task"] == "chaos.work" and job not in record.acknowledged]
        completed_runs = Counter(run.job_id for run in runs if run.outcome == "ended")
        succeeded_unrun = [job for job in work + tick_jobs if state_of[job] == "succeeded" and not completed_runs[job]]
        rerun = [job for job, count in completed_runs.items() if count > 1]
        overlapping_jobs = sorted({first.job_id for first, _second in overlaps})
        survivors = [count for _label, count in record.survivors]

        def ids(values: list[int], limit: int = 8) -> str:
            return "" if not values else " (" + ", ".join(map(str, sorted(values)[:limit])) + (", …" if len(values) > limit else "") + ")"

        ends = [end for _start, end in record.cuts]
        gaps = [following - end for end, following in zip(ends, [start for start, _ in record.cuts[1:]] + [window_end + 3.0])]

        def seconds(value: float | None, gap: float) -> str:
            return f"none in {gap:.0f}" if value is None else f"{value:.1f}"

        table = [
            ("seed", str(self.seed)),
            ("faults", f"{record.master_kills} master kill -9 ({record.immediate_restarts} restarted at once), "
                       f"{record.worker_kills} worker kills, {len(record.cuts)} store cuts "
                       f"({sum(end - start for start, end in record.cuts):.0f}s in all)"),
            ("jobs submitted (acknowledged)", f"{len(work)} + {len(poison)} poison; {sum(record.submit_errors.values())} submits refused"
                                              + (f" ({', '.join(f'{k} {v}' for k, v in record.submit_errors.items())})" if record.submit_errors else "")),
            ("schedule jobs fired", str(len(tick_jobs))),
            ("succeeded", f"{sum(state_of[j] == 'succeeded' for j in work)} of {len(work)} submitted, "
                          f"{sum(state_of[j] == 'succeeded' for j in tick_jobs)} of {len(tick_jobs)} ticks"),
            ("dead (poison apart)", f"{len(dead_work)}{ids(dead_work)}"),
            ("poison jobs (max_attempts 2)", ", ".join(f"{job}: {state_of[job]} after {by_id[job]['attempts'] if job in by_id else '?'} attempts"
                                      + (f" (error {by_id[job]['error_length']} bytes)" if job in by_id and by_id[job]["error_length"] else "")
                                      for job in sorted(poison)) or "none"),
            ("JOBS LOST (acknowledged, never finished)", f"{len(lost)}"
             + (f" — {len(lost_work)} submitted, {len(lost_poison)} poison, {len(lost_ticks)} ticks; "
                + ", ".join(f"{state} {count}" for state, count in Counter(
                    f"{state_of[j]}" + (f" owned by {owned_by(j)}" if state_of[j] == "running" else "") for j in lost).items())
                + ids(lost) + self.settle_note if lost else "")),
            ("JOBS RUN IN TWO PROCESSES AT ONCE", f"{len(overlapping_jobs)}{ids(overlapping_jobs)}"),
            ("TICKS FIRED TWICE", f"{len(ticks.doubles)}{ids(ticks.doubles)}"),
            ("ticks missed", f"{len(ticks.missed)} of {ticks.expected} expected"
                             + (f" ({len(ticks.excused)} more excused by the policy)" if ticks.excused else "") + ids(ticks.missed)),
            ("orphan processes left at the end", f"{len(leftovers)}"
             + (" (" + ", ".join(f"{role} {n}" for role, n in Counter(p.role for p in leftovers).items()) + ")" if leftovers else "")),
            ("processes alive 1s after their master's kill -9", f"{sum(survivors)} after {len(survivors)} kills"
             + (f" (max {max(survivors)})" if survivors else "")),
            ("runs still going after their master's kill -9", f"{len(outliving)}"
             + (f" (up to {max(after for _run, after in outliving):.1f}s after)" if outliving else "")),
            ("runs of an attempt already superseded (stale hand-off)", f"{len(superseded)}"
             + ids(sorted({run.job_id for run in superseded}))),
            ("recovery after each cut (s): first claim / first start of a job submitted after it",
             ", ".join(f"{seconds(claim, gap)}/{seconds(start, gap)}" for claim, start, gap in zip(claims, recoveries, gaps))
             or "no cut"),
            ("masters' own exits (restarted)", ", ".join(f"{k} ×{v}" for k, v in sorted(record.unexpected_exits.items())) or "none"),
            ("masters at the end", ", ".join(f"{name} {how}" for name, how in sorted(stopped.items()))),
            ("runs logged", f"{len(runs)} ({sum(run.outcome == 'open' for run in runs)} never finished: killed); "
                            f"{len(rerun)} jobs completed twice (one after the other: at-least-once)"
                            + (f"; {malformed} malformed lines" if malformed else "")),
            ("succeeded without a completed run", f"{len(succeeded_unrun)}{ids(succeeded_unrun)}"),
            ("stored but not acknowledged", f"{len(stored_unacknowledged)} (a submit that failed after its commit)"),
        ]
        width = max(len(name) for name, _ in table)
        print()
        print(f"chaos soak — {time.strftime('%Y-%m-%d %H:%M')}, {self.sizes.duration:.0f}s of faults, 3 masters on MariaDB "
              f"through a proxy, {self.sizes.workers} workers each, seed {self.seed}")
        print()
        print(f"| {'figure'.ljust(width)} | value |")
        print(f"|{'-' * (width + 2)}|-------|")
        for name, value in table:
            print(f"| {name.ljust(width)} | {value} |")
        print()
        def described(run: analysis.Run) -> str:
            text = f"attempt {run.attempt} pid {run.pid} ({run.master}) {run.start:.3f}–{run.end:.3f} [{run.outcome}]"
            killed = record.killed_at.get(run.master)
            if killed is not None and run.start < killed < run.end:
                text += f" still running {run.end - killed:.1f}s after its master's kill -9"
            if run.token in stale:
                text += " started after a later attempt had (stale hand-off)"
            return text

        for first, second in overlaps[:10]:
            print(f"overlap: job {first.job_id}: {described(first)} and {described(second)}")
        for job in sorted(dead_work)[:5]:
            print(f"dead: job {job}: {by_id[job]['error']!r}")
        for message, count in master_log_summary(self.masters).most_common(8):
            print(f"master logs: {count} × {message}")
        failed = bool(lost or overlaps or ticks.doubles)
        print(f"verdict: {'FAIL' if failed else 'ok'} — lost {len(lost)}, overlapping {len(overlapping_jobs)}, "
              f"ticks fired twice {len(ticks.doubles)}; files in {self.root if failed else '(removed)'}")
        return 1 if failed else 0


def master_log_summary(masters: list[Master]) -> Counter[str]:
    """ERROR/CRITICAL lines of the masters' logs, digits blanked so that repeats count together."""
    import re

    found: Counter[str] = Counter()
    for master in masters:
        path = master.folder / "jobd.log"
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if " ERROR " in line or " CRITICAL " in line:
                message = line.split(" ERROR ", 1)[-1].split(" CRITICAL ", 1)[-1]
                found[re.sub(r"\d+", "N", message)[:160]] += 1
    return found


# -- set-up and clean-up -------------------------------------------------------------------


class Resources:
    """Everything the soak creates outside its Python objects, removed once, from the main thread or the watchdog."""

    def __init__(self) -> None:
        self.database: str | None = None
        self.root: Path | None = None
        self.proxy: TcpProxy | None = None
        self.soak: Soak | None = None
        self.keep_files = False
        self._lock = threading.Lock()
        self._done = False

    def create(self) -> None:
        self.database = f"jobdchaos_{secrets.token_hex(4)}"
        connection = pymysql.connect(**MARIADB, connect_timeout=5)
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE `{self.database}` CHARACTER SET utf8mb4")
        finally:
            connection.close()
        self.root = Path(tempfile.mkdtemp(prefix="jobd-chaos-", dir="/tmp"))  # short: Unix socket paths are capped
        self.proxy = TcpProxy().start()

    def release(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        if self.soak is not None:
            self.soak.ending.set()
            time.sleep(0.2)  # a restart the main thread had begun has its process now
            for master in self.soak.masters:
                if master.running() and master.process is not None:
                    os.kill(master.process.pid, signal.SIGKILL)
                    master.process.wait(timeout=10)
            kill_leftovers(self.soak.token, grace=0.0)
        if self.proxy is not None:
            self.proxy.stop()
        if self.database is not None:
            try:
                connection = pymysql.connect(**MARIADB, connect_timeout=5)
                with connection.cursor() as cursor:
                    cursor.execute(f"DROP DATABASE IF EXISTS `{self.database}`")
                connection.close()
            except pymysql.MySQLError as error:
                print(f"could not drop database {self.database}: {error}", file=sys.stderr)
        if self.root is not None and not self.keep_files:
            shutil.rmtree(self.root, ignore_errors=True)


def watchdog(resources: Resources, seconds: float) -> None:
    """End everything ``seconds`` from now, whatever the main thread is stuck in."""
    def fire() -> None:
        print(f"chaos soak: watchdog: still running after {seconds:.0f}s; killing everything", file=sys.stderr, flush=True)
        resources.keep_files = True
        try:
            resources.release()
        finally:
            os._exit(3)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()


def mariadb_answers() -> str | None:
    try:
        pymysql.connect(**MARIADB, connect_timeout=3).close()
    except pymysql.MySQLError as error:
        return str(error)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, help="seconds of faults, 60–300 (default 180; --quick: 75)")
    parser.add_argument("--seed", type=int, help="seed of the random faults (default: a new one, printed)")
    parser.add_argument("--quick", action="store_true", help="CI: 75 s of faults, shorter settling (~2 minutes in all)")
    options = parser.parse_args()
    sizes = QUICK if options.quick else FULL
    if options.duration is not None:
        if not 60 <= options.duration <= 300:
            parser.error("--duration must be between 60 and 300 seconds")
        sizes = replace(sizes, duration=options.duration)
    seed = options.seed if options.seed is not None else secrets.randbelow(10**6)
    print(f"chaos soak: seed {seed} (repeat with --seed {seed}), {sizes.duration:.0f}s of faults", file=sys.stderr, flush=True)

    problem = mariadb_answers()
    if problem is not None:
        print(f"chaos soak: MariaDB does not answer on 127.0.0.1:3306 ({problem})", file=sys.stderr)
        return 2
    resources = Resources()
    watchdog(resources, sizes.duration + WATCHDOG_EXTRA_SECONDS)
    # SIGTERM (a CI timeout) unwinds through the finally block that stops every process.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    status = 1
    try:
        resources.create()
        assert resources.root is not None
        # jobd.submit logs (e.g. a hand-off it could not undo during a cut) go to a file, not the table's stream.
        logging.basicConfig(filename=resources.root / "bench.log", level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        assert resources.root is not None and resources.database is not None and resources.proxy is not None
        resources.soak = Soak(sizes, seed, resources.root, resources.database, resources.proxy)
        status = resources.soak.run()
    except KeyboardInterrupt:
        print("chaos soak: interrupted", file=sys.stderr)
        status = 130
    except RuntimeError as error:  # the set-up failed (a master would not start): nothing was measured
        print(f"chaos soak: could not run: {error}", file=sys.stderr)
        status = 2
    finally:
        resources.keep_files = status != 0
        if resources.keep_files and resources.root is not None:
            print(f"chaos soak: logs kept in {resources.root}", file=sys.stderr)
        resources.release()
    return status


if __name__ == "__main__":
    sys.exit(main())
