"""`jobd status --json` answered by a running master: the whole document, composed where the store is open.

The command used to validate the config, load SQLAlchemy and open the
store, ask the master for its own status, then read the masters' registry,
the rate buckets and the recent batches itself: most of its time went on
loading what the master already holds. Asked ``status_report``, the master
runs the same composition (``jobd.status.report.compose_status``) on its
own store and sends the document.

The asker names the config it would have read by its ``settings_key``
(``jobd.config_digest``); the master answers only when that is the config it
runs, so the document is exactly the one the command would have composed.
Otherwise, while its store is down (each read would hold the master's loop
for a read timeout), or when the document is larger than
``CONTROL_MAX_JOBS_REPLY_BYTES``, it answers ``{"report": None}`` and the
command composes the document itself, asking the master for its own status
as it does for another config.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from .. import defaults
from ..config_digest import settings_key
from ..errors import ProtocolError
from ..status.model import MasterStatus
from ..status.report import compose_status

if TYPE_CHECKING:
    from ..config import JobdConfig
    from .core import Master

MAX_KEY_CHARS = 128


class StatusAnswer:
    """The ``status_report`` operation of one master."""

    def __init__(self, master: Master) -> None:
        self.master = master
        self._key: tuple[JobdConfig, str] | None = None  # the config it was computed for, and the key

    def __call__(self, args: dict[str, Any]) -> dict[str, Any]:
        """``{"report": the status --json document}``, or ``{"report": None}`` when the asker must compose it."""
        asked = args.get("settings")
        if not isinstance(asked, str) or not 0 < len(asked) <= MAX_KEY_CHARS:
            raise ProtocolError(f"status_report: settings must be a config's settings key (at most {MAX_KEY_CHARS} characters)")
        master = self.master
        if asked != self._settings_key(master.config):
            return {"report": None}  # the file changed since this master read it (or another environment read it)
        # As the asker would have it: the status operation's answer after its trip through JSON.
        live = MasterStatus.from_wire(json.loads(json.dumps(master.status(), default=str)))
        if live.store.get("available") is False:
            # The store is down: composing would wait out a read timeout per read, with this
            # master's loop held. The asker composes it, on its own time, from this master's memory.
            return {"report": None}
        document = compose_status(master.config, live, master.store, now=time.time(), live_activity=True).to_json()
        if len(json.dumps(document, default=str)) > defaults.CONTROL_MAX_JOBS_REPLY_BYTES:
            return {"report": None}
        return {"report": document}

    def _settings_key(self, config: JobdConfig) -> str:
        if self._key is None or self._key[0] is not config:  # computed once per loaded config (start, reload)
            self._key = (config, settings_key(config))
        return self._key[1]
