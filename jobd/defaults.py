"""Every default and limit of jobd, in one place."""

from __future__ import annotations

CONFIG_FILE_NAME = "jobd.toml"
CONFIG_ENV_VAR = "JOBD_CONFIG"

# Store
DEFAULT_STORE_URL = "sqlite:///jobd.db"  # relative paths resolve next to the config file
STORE_SCHEMA_VERSION = 8  # v2 (issue 7): jobd_job_logs; v3: partial indexes on SQLite; v4: CHECK on jobs.state; v5: jobd_rate_buckets; v6: jobd_task_catalogue; v7: batches; v8: partial unique key indexes on SQLite
TABLE_PREFIX = "jobd_"
# Every store call is bounded in time, so an outage or a silent partition is an
# error after a few seconds, never a hang. MySQL/MariaDB: PyMySQL's timeouts,
# overridable in the store URL (``?connect_timeout=5&read_timeout=10&write_timeout=10``).
STORE_CONNECT_TIMEOUT_SECONDS = 5
STORE_READ_TIMEOUT_SECONDS = 10
STORE_WRITE_TIMEOUT_SECONDS = 10
# SQLite: how long a writer waits for another process's lock before "database is
# locked" (overridable in the URL: ``sqlite:///jobd.db?timeout=10``).
SQLITE_BUSY_TIMEOUT_SECONDS = 10.0
# A submitting process re-reads the task catalogue (jobd.catalogue) once its copy is this
# old, and at once when it refuses an intent: a daemon's changed tasks are seen within it.
CATALOGUE_MAX_AGE_SECONDS = 5.0
START_STORE_WAIT_SECONDS = 15.0  # a starting master waits this long for a store that does not answer (then exits 3)
STORE_RETRY_INTERVAL_SECONDS = 0.5  # a master probes a store that failed this often, and resumes once it answers
STORE_PROBE_TIMEOUT_SECONDS = 2  # the probe's own connect/read timeout (a stalled store must not hold it)
# A master stops its workers this long before its lease can have run out when it
# could not renew it (a fraction of the lease, at least the minimum).
LEASE_SAFETY_MARGIN_FRACTION = 0.25
LEASE_SAFETY_MARGIN_MIN_SECONDS = 1.0

# Daemons
DEFAULT_WORKERS = 2
DEFAULT_TIMEOUT_SECONDS = 3600.0
DEFAULT_MAX_ATTEMPTS = 3
MOST_ATTEMPTS = 1000  # the largest max_attempts a daemon or a submit may ask for
PRIORITY_RANGE = (-(2**31), 2**31 - 1)  # a job's priority: the jobs table's INTEGER column on MySQL
DEFAULT_BACKOFF_BASE_SECONDS = 2.0
DEFAULT_BACKOFF_MAX_SECONDS = 600.0
DEFAULT_BACKOFF_JITTER = 0.2  # +/- fraction of the computed delay
DEFAULT_MAX_TASKS_PER_WORKER = 0  # 0: never recycle on count
DEFAULT_DRAIN_TIMEOUT_SECONDS = 30.0
DEFAULT_MAX_MEMORY_MB = 0  # 0: never recycle on memory
DEFAULT_MAX_MEMORY_HARD_MB = 0  # 0: never kill a job over memory
MEMORY_CHECK_INTERVAL_SECONDS = 0.5  # how often busy workers' RSS is read for the hard limit

# Master
DEFAULT_SOCKET_NAME = "jobd.sock"
DEFAULT_PID_FILE_NAME = "jobd.pid"
DEFAULT_POLL_INTERVAL_SECONDS = 0.5  # how often the store is asked for due jobs when nothing woke us
HEARTBEAT_INTERVAL_SECONDS = 5.0
HEARTBEAT_LEASE_SECONDS = 30.0
TIMEOUT_KILL_GRACE_SECONDS = 5.0  # SIGTERM → SIGKILL for a worker past its job's timeout
DRAIN_KILL_GRACE_SECONDS = 2.0  # SIGTERM → SIGKILL for a job still running at the drain timeout: the master is stopping
CANCEL_GRACE_SECONDS = 10.0  # a cancelled job that ignores ctx.cancelled is killed after this
WORKER_RESTART_BACKOFF_BASE_SECONDS = 0.5
WORKER_RESTART_BACKOFF_MAX_SECONDS = 30.0
FENCE_TIMEOUT_SECONDS = 10.0  # how long a starting master waits for the killed processes of the previous run to end
STARTED_LEDGER_SLOTS = 256  # a worker remembers its last this many started jobs on the host (outcomes not yet written)
WORKER_STABLE_AFTER_SECONDS = 10.0  # a worker alive this long resets its pool's crash streak
PROGRESS_FLUSH_INTERVAL_SECONDS = 2.0  # latest progress is persisted to the store at most this often
PROGRESS_SEND_INTERVAL_SECONDS = 0.2
OUTCOME_BATCH_SECONDS = 0.005  # finished attempts are written together within this window (group commit)
OUTCOME_BATCH_MAX = 200
SQLITE_JOBS_PER_WRITE = 64  # SQLite: the master's claims and outcome writes touch at most this many jobs per transaction ...
SHORT_WRITES_AFTER_URGENT_SECONDS = 30.0  # ... for this long after it claimed a job past those it held
HANDOFF_OFFER_INTERVAL_SECONDS = 0.01  # a master republishes which daemons take hand-offs at most this often
DIRECT_GATE_LOCK_SECONDS = 0.05  # the master and a worker hold a worker's gate lock for microseconds; longer: the other died
MAX_DIRECT_DATAGRAMS_PER_READ = 256  # the master reads at most this many from a busy worker's socket per turn
HANDOFF_ENV_VAR = "JOBD_HANDOFF"  # "off" (or "on") overrides jobd.toml's handoff, e.g. to run the tests without it
HANDOFF_ADOPT_AFTER_SECONDS = 5.0  # a job handed to a master without a datagram is adopted after this long
WAL_CHECKPOINT_INTERVAL_SECONDS = 0.25  # a SQLite store's log is copied back by the master's thread this often
WAL_TRUNCATE_ABOVE_BYTES = 16 * 1024 * 1024  # ...and truncated when it is larger (a full disk needs its space back)
# A TRUNCATE checkpoint holds writers off while it copies: at a 1 MB limit, a master running 5,000 jobs/s
# (30-50 MB of log a second) truncated several times a second and the claims and submits behind it waited 15-30 ms.
# Between the thread's checkpoints the master's own commits keep the log short (a PASSIVE checkpoint past
# 2 MB, on the master's side), so a submitter's commit, which checkpoints past SQLite's 1,000 pages, rarely has to.
WAL_AUTOCHECKPOINT_SAFETY_PAGES = 512  # the master's own commits checkpoint only past this many pages (2 MB)
SNAPSHOT_COUNTS_MAX_AGE_SECONDS = 5.0  # job counts in the live snapshot (a table scan) are refreshed this often  # a worker reports progress at most this often

# Control socket
CONTROL_MAX_REQUEST_BYTES = 64 * 1024
CONTROL_REQUEST_TIMEOUT_SECONDS = 10.0
CONTROL_SOCKET_MODE = 0o660
CONTROL_PROTOCOL_VERSION = 1
# `jobd jobs` and `jobd job` ask a running master (its store is open): at most this many jobs,
# and a reply past this size is declined (the CLI then reads the store itself).
JOBS_LIST_MAX = 10000
CONTROL_MAX_JOBS_REPLY_BYTES = 1024 * 1024
JOBS_FROM_MASTER_TIMEOUT_SECONDS = 5.0  # a master that does not answer by then: the CLI reads the store
# Connections the kernel queues before the control thread accepts them: a burst of
# CLI calls or app submits (hundreds at once) must wait, not be refused.
CONTROL_LISTEN_BACKLOG = 1024
# `jobd top` reads which daemons have jobs no live master runs this often (a count over the jobs table).
UNSERVED_REFRESH_SECONDS = 5.0

# Activity: live display data in memcached (or the master's memory). It is a
# cache: losing any of it loses no job.
ACTIVITY_SNAPSHOT_INTERVAL_SECONDS = 1.0  # a master republishes its status this often
ACTIVITY_SNAPSHOT_MIN_INTERVAL_SECONDS = 0.25  # ...or this soon after a job started or ended
ACTIVITY_MASTER_TTL_SECONDS = 10  # a master's snapshot vanishes this long after it stops refreshing
ACTIVITY_MASTER_INDEX_REFRESH_SECONDS = 30.0  # a master re-adds itself to the index (evictions)
ACTIVITY_INDEX_TTL_SECONDS = 24 * 3600
ACTIVITY_PROGRESS_TTL_SECONDS = 600  # a running job's progress outlives its worker by at most this
ACTIVITY_EVENTS_KEPT = 50  # the ring of recent events per daemon
ACTIVITY_EVENTS_TTL_SECONDS = 24 * 3600
ACTIVITY_COUNTER_BUCKET_SECONDS = 60  # throughput counters: one bucket per minute...
ACTIVITY_COUNTER_TTL_SECONDS = 2 * 3600  # ...kept two hours (the dashboard shows the last hour)
ACTIVITY_QUEUED_SLOTS = 62  # queue depth: one slot per minute, a ring over the last hour (and the current minute)
ACTIVITY_QUEUED_TTL_SECONDS = 2 * 3600  # ...a slot older than the ring is ignored by its minute anyway
MEMCACHED_CONNECT_TIMEOUT_SECONDS = 0.25  # loopback or LAN: a slower server counts as down
MEMCACHED_TIMEOUT_SECONDS = 0.5
MEMCACHED_RETRY_AFTER_SECONDS = 1.0  # after a failure, skip memcached this long (doubling)...
MEMCACHED_RETRY_AFTER_MAX_SECONDS = 8.0  # ...up to this: a dead server never slows a task much
MEMCACHED_WARNING_INTERVAL_SECONDS = 60.0  # "memcached unavailable" is logged at most this often
RESULT_CACHE_MAX_BYTES = 900 * 1024  # memcached's default item limit is 1 MiB

# Job limits
MAX_ARGS_BYTES = 1024 * 1024
# Caps on what a task controls (``jobd.output_caps``), in bytes of UTF-8; each is a
# setting (``max_error_bytes = …`` globally or per daemon). The largest values
# allowed keep every write within a MariaDB column (TEXT: 64 KB, MEDIUMTEXT:
# 16 MB) and its default max_allowed_packet (16 MB).
MAX_ERROR_BYTES = 4 * 1024  # the error line: shown in lists, alerts and `jobd status`
MAX_TRACEBACK_BYTES = 64 * 1024  # cut in the middle: its start and its end are kept
MAX_RESULT_BYTES = 1024 * 1024  # a larger result fails the attempt
MAX_CHECKPOINT_BYTES = 1024 * 1024  # a larger checkpoint makes ctx.checkpoint raise
MAX_PROGRESS_MESSAGE_BYTES = 2 * 1024
MAX_LOG_LINE_BYTES = 16 * 1024  # one log record of a job (its traceback included)
LIMIT_ERROR_BYTES = 60 * 1024  # the most max_error_bytes may be (the error column is TEXT on MariaDB)
LIMIT_PROGRESS_MESSAGE_BYTES = 8 * 1024  # progress is JSON in a TEXT column: escaping may grow it
LIMIT_OUTPUT_BYTES = 8 * 1024 * 1024  # the most the other caps may be
# The largest value of the jobs table's INTEGER columns on MySQL: a claim never
# counts an attempt past it, and a row found at it is dead instead of run.
MAX_ATTEMPTS_COUNTER = 2**31 - 1
# A worker that could not reach the store to check a hand-off tries again after this long
# (meanwhile submits' jobs reach it through the master, which checks them).
HANDOFF_GUARD_RETRY_SECONDS = 5.0
MAX_NAME_LENGTH = 190  # fits a MySQL utf8mb4 unique index
MAX_ROW_ID = 2**63 - 1  # the largest job or batch id: the stores' ids are signed 64-bit integers

# Production: systemd, metrics, job logs, alerts
DEFAULT_JOB_LOG_MAX_LINES = 500  # per job attempt; a chatty task cannot fill the store
JOB_LOG_FLUSH_INTERVAL_SECONDS = 0.5  # captured job log lines are written to the store this often
LOG_FRAME_MAX_BYTES = 4 * 1024 * 1024  # one worker log record on its pipe; a longer one keeps its head, marked
LOG_RECEIVER_STOP_SECONDS = 2.0  # a stopping master waits at most this for the last worker records
METRICS_REFRESH_INTERVAL_SECONDS = 1.0  # queue depth and pool gauges are refreshed this often
DEFAULT_ALERT_TIMEOUT_SECONDS = 30.0
MAX_RUNNING_ALERTS = 8  # more at once are dropped (and logged): an alert storm must not fork-bomb the host
CRASH_LOOP_ALERT_STREAK = 5  # consecutive quick worker crashes that make a daemon "crash-looping"
STATUS_INTERVAL_SECONDS = 5.0  # how often STATUS= is sent to systemd when no watchdog is set
MAX_SOCKET_PATH_BYTES = 107  # a Unix socket path: sun_path holds 108 bytes with the terminating NUL (Linux)

#: Store URLs jobd can open: the embedded SQLite file, MySQL/MariaDB through PyMySQL.
SUPPORTED_STORE_SCHEMES = ("sqlite", "mysql+pymysql", "mariadb+pymysql")

# `jobd web`: the dashboard and HTTP API (a process of its own)
DEFAULT_WEB_BIND = "127.0.0.1:8686"  # loopback: a non-loopback bind needs tokens
WEB_READ_TOKEN_ENV_VAR = "JOBD_WEB_READ_TOKEN"
WEB_ADMIN_TOKEN_ENV_VAR = "JOBD_WEB_ADMIN_TOKEN"
WEB_MIN_TOKEN_LENGTH = 16  # a shorter token is guessable; config validation refuses it
WEB_MAX_BODY_BYTES = 1024 * 1024  # a larger request body is answered 413
WEB_DRAIN_BODY_BYTES = 8 * 1024 * 1024  # an oversized body is read (and dropped) up to this, so the client sees the 413
WEB_REFRESH_SECONDS = 0.25  # the live view is read this often while a page is open (one reader for every page)
WEB_KEEPALIVE_SECONDS = 15.0  # an idle event stream sends a comment this often, so proxies keep it open
WEB_JOBS_PAGE_MAX = 500  # most jobs one /api/v1/jobs page returns
JOB_TIME_FILTER_SLACK_SECONDS = 60.0  # a created-at filter's id range is widened by this much clock skew between inserting hosts
BULK_ACTION_BATCH = 500  # a bulk retry/delete of dead jobs changes at most this many rows per transaction
BULK_ACTION_MAX = 100_000  # and at most this many per request (the answer says if more are left)
