"""``jobd web``: a live dashboard and an HTTP JSON API, in a process of its own.

It never runs inside the master (a slow browser must not slow a claim): it
reads what ``jobd top`` reads (``jobd.dashboard``: memcached, else the
master's control socket, else the store) and acts through the store like
the CLI does. ``security`` holds the access rules (pure), ``feed`` the one
shared reader behind every open page, ``routes`` the API, ``app`` puts them
together, ``server`` binds and runs it.
"""
