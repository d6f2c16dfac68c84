"""The master does not preempt a running process when it wakes; workers run their tasks under the normal policy.

Why: a worker that takes a submit's job writes ``took`` to the master's
pipe just before it calls the task. Linux treats a pipe write as a
*synchronous* wake-up (the writer is expected to sleep soon), so it often
puts the woken master on the worker's own CPU, and under the default policy
the master then preempts the worker for its whole loop turn, with the other
CPU idle: on a 2-vCPU VM the task started 0.5-1.2 ms later for about one
submit in three, which was the p99 of submit → start (2.1 ms against 1.1
once the master stopped preempting; ``python bench/peers.py --workloads latency``).

``SCHED_BATCH`` changes only that. A batch thread keeps its nice value, its
share of the CPU and its placement on an idle CPU, but when it wakes it
waits for the CPU's next scheduling point (the running thread blocks, or
the next scheduler tick) instead of preempting it. The master only keeps
books around the jobs, so such a wait delays nothing a job waits on, and
it no longer preempts the application's own processes on the host either.

The policy is set per thread and inherited by the threads and processes
started later, the fork server included; so a worker sets the normal
policy back before it runs anything, and the application's task code runs
as it would anywhere else. Where the system has no such policy, or refuses
it (a sandbox's seccomp profile), the master runs as before; a master
started under another policy than the default (an operator's ``chrt``,
systemd's ``CPUSchedulingPolicy=``) keeps it, and its workers keep it too.
"""

from __future__ import annotations

import os

_THREADS = "/proc/self/task"  # Linux: one entry per thread of this process

_switched = False  # this process is a master that put itself under SCHED_BATCH
_MAY_PREEMPT = ": it may preempt a worker that has just taken a submit's job"
_POLICY_NAMES = {  # for the log line of a master started under another policy
    getattr(os, name): name for name in ("SCHED_BATCH", "SCHED_IDLE", "SCHED_FIFO", "SCHED_RR") if hasattr(os, name)
}


def master_yields_on_wakeup() -> str | None:
    """Put every thread of this process under ``SCHED_BATCH``; None if done, else a line for the log saying why not.

    Only from the default policy: a master started under another one (an
    operator's ``chrt`` or systemd's ``CPUSchedulingPolicy=``) keeps it, and
    so do its workers. Called before logging is set up (its threads must
    inherit the policy), so it logs nothing itself.
    """
    global _switched
    if not hasattr(os, "SCHED_BATCH"):
        return f"the master keeps the normal CPU policy (this system has no SCHED_BATCH){_MAY_PREEMPT}"
    started_under = os.sched_getscheduler(0)
    if started_under != os.SCHED_OTHER:
        name = _POLICY_NAMES.get(started_under, str(started_under))
        return f"the master keeps the CPU policy it was started under ({name}), and so do its workers"
    try:
        thread_ids = [int(name) for name in os.listdir(_THREADS)]
    except OSError:
        thread_ids = [0]  # the calling thread: the master's loop
    try:
        for thread_id in thread_ids:
            os.sched_setscheduler(thread_id, os.SCHED_BATCH, os.sched_param(0))
    except OSError as error:
        return f"the master keeps the normal CPU policy (SCHED_BATCH refused: {error}){_MAY_PREEMPT}"
    _switched = True
    return None


def workers_set_normal_policy() -> bool:
    """Whether this master's workers must set the normal policy back: it put itself under SCHED_BATCH."""
    return _switched


def worker_runs_normally() -> None:
    """Set the normal policy back in this process (a worker, single-threaded here), inherited as SCHED_BATCH."""
    try:
        if os.sched_getscheduler(0) == os.SCHED_BATCH:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except OSError:
        pass  # a batch worker runs its tasks all the same
