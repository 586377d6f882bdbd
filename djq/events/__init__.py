"""Celery's event stream, carried by PostgreSQL NOTIFY: the dispatcher workers publish
with (``-E``), the receiver monitors listen with, the cluster :class:`~.state.State` they
keep, and snapshot cameras (:mod:`.snapshot`)."""

from __future__ import annotations

from .dispatcher import EVENTS_CHANNEL, EventDispatcher, event
from .receiver import Receiver
from .state import State

__all__ = ["EVENTS_CHANNEL", "EventDispatcher", "Receiver", "State", "event"]
