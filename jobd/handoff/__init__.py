"""Hand-off: a submit gives its job straight to an idle local master's worker, with no claim in between.

On an idle system a submitted job used to be written twice before it could
start: the submit's INSERT (``queued``), then the master's claim (``running``,
owner, attempt counted), each a committed write transaction, with the
master's wake-up between them. When the local master has a worker with
nothing to do, the second write buys nothing: no other master should get
the job, and the submitter can record the claim itself.

The path, one module per step:

* ``offer``: a master with an idle worker (and nothing prefetched) for a
  daemon keeps a small file beside its control socket, ``SOCKET.handoff``,
  naming itself, those daemons and their workers' own sockets.
* ``submit_side``: a submit that finds its daemon offered inserts the job
  already claimed by that master (``running``, ``attempts = 1``, ``owner`` =
  the master) and sends ``run/2 DAEMON JOB_ID PRIORITY MAX_ATTEMPTS TASK ARGS``
  (``datagrams``) to one of the workers' sockets, else to the master's wake
  socket (``run/1 DAEMON JOB_ID`` when the args are too long); if neither
  can be sent it puts the job back in the queue before it returns. Without
  an offer it inserts a queued job and sends ``wake/1 DAEMON``.
* ``worker_side``: an idle worker reads its socket, asks the store whether
  the job is its master's running first attempt (``store.driver_sql``),
  tells the master (``protocol.HandedJob``) and runs it. What it cannot run
  at once it passes to the master unread.
* ``gate``: two parties may give a worker its next job, the master over
  the pipe and a submit over the socket; a lock in shared memory decides
  which one holds the worker.
* ``channel``: a worker's socket and gate, bound by the master.
* ``desk``: the master's side, one object: the sockets it waits on, what
  it reads from them, the offer it publishes or withdraws, and the jobs
  that reach it (confirmed against the store, or adopted when their
  datagram never came).
* ``sockets``: where each socket lives, who sent a datagram (``SO_PASSCRED``:
  only root and the master's own user are taken at their word about a
  job's content), and the one loop that reads them.

A datagram only names a job, whoever sent it: before a job handed this way
starts, the store must hold it as the receiving master's running first
attempt, so a forged datagram, or one replayed after the job ended, runs
nothing. Every invariant of a claim holds: the job is durable and claimed
before anything acknowledges it or runs it. What can go wrong, and why no
job is lost:

* The offer is stale (the master got busy): the job waits in the master's
  prefetch backlog like any job claimed ahead, and goes back to the queue
  on a drain or a daemon stop.
* No master receives the datagram (the master died and left its offer, or
  the socket buffer is full): the send fails and the submit puts the job
  back in the queue (``JobQueue.requeue``) before it returns.
* The submitter dies between its commit and its send: the master finds the
  running job it owns but never heard of (``JobQueue.owned_running``, every
  few seconds) and adopts it.
* The master dies after the hand-off: its running jobs are orphans,
  re-queued by the next master like any other.

The offer is only a hint. With ``handoff = false`` in jobd.toml (or
``JOBD_HANDOFF=off``) no offer is published, workers get no socket, the
master ignores ``run`` datagrams, and every submit takes the plain path: a
queued job and a ``wake/1``.
"""
