"""The names the queue's SQL shares with Python, one definition each.

:class:`Status` is ``djq_task.status``: what the queue does with a row, whatever its
state (``state`` is what users see). The models use it for the column's choices, the
statements of ``djq/sql/*.sql`` get its numbers from :func:`djq.sql.query` (which fills
in ``{DONE}`` and the like), and the tests name it. The NOTIFY channels and the size of
a NOTIFY's batch of ids are filled in the same way.

A released function file (``djq/sql/functions/``) keeps the literal numbers it shipped
with; they are these, and never change.
"""

from __future__ import annotations

from django.db import models


class Status(models.IntegerChoices):
    WAITING = 0, "waiting"
    CLAIMED = 1, "claimed"
    STARTED = 2, "started"
    DONE = 3, "done"
    # A canvas row (chain step, chord callback) that exists but is not claimable yet: the
    # database trigger of migration 0004 starts or fails it when what it waits on ends.
    DEFERRED = 4, "deferred"


#: NOTIFY channel a worker listens on; the payload is the queue name.
ENQUEUE_CHANNEL = "djq_enqueue"
#: NOTIFY channel ``AsyncResult.get()`` listens on; the payload is comma-separated task ids.
DONE_CHANNEL = "djq_done"
#: NOTIFY channel for control messages to workers (revoke with terminate).
CONTROL_CHANNEL = "djq_control"

#: Task ids per NOTIFY: a payload must stay under 8000 bytes (36-char ids plus commas).
NOTIFY_IDS = 200

__all__ = ["Status", "ENQUEUE_CHANNEL", "DONE_CHANNEL", "CONTROL_CHANNEL", "NOTIFY_IDS"]
