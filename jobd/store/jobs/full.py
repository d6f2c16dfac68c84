"""The whole jobs queue: the master's operations plus the submit and the operator actions (SQLAlchemy)."""

from __future__ import annotations

from . import JobQueue
from .operator import OperatorActions
from .submit import Submitting


class FullJobQueue(Submitting, OperatorActions, JobQueue):
    """Every queue operation over the jobs table of one store."""
