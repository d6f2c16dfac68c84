"""A master's status, typed: built in one place, read by ``jobd status``, ``jobd web`` and memcached readers.

``model`` holds the records (``MasterStatus`` is what a master answers on
its control socket and publishes to memcached; ``StatusReport`` is the
``status --json`` document of docs/status-json.md), ``snapshot`` builds a
master's own ``MasterStatus``, and ``report`` reads a ``StatusReport`` from
the master, memcached and the store.
"""
