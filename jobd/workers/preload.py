"""Imported by the fork server alone, last of its preloads: the workers' modules, frozen for the garbage collector.

The fork server (``processes.py``) imports the store's driver and then this
module before it forks any worker. A forked worker shares those pages with
it until something writes to them; Python's cyclic garbage collector writes
to every object it examines, so each worker's first collections copied much
of what it shared. ``gc.freeze()`` at the end of this import moves
everything imported so far out of the collector's sight (the documented
recipe for a pre-forking server): those objects are never collected — they
live as long as the process anyway — and their pages stay shared. It also
installs the fork server's exit hook (``server_exit``): a fork server that
ends with its master ends its workers and their tasks' processes first.
Nothing else imports this module.
"""

from __future__ import annotations

import gc

from . import server_exit, worker  # noqa: F401  (worker: imported for the workers to share)

server_exit.install()  # when the fork server ends with its master, its workers and their tasks go first

gc.collect()
gc.freeze()
