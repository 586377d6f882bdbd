"""When a worker claims rows, and how many (Celery's prefetch, paced for a database).

Free pool slots are filled by rows claimed and started in the same statement. Rows are
reserved (claimed for later, up to ``concurrency x prefetch multiplier``, Celery's
prefetch) only when work has just arrived or a poll is due: a worker working through a
backlog then claims rows as its processes free up, so each task is written twice
(started, finished) rather than three times, and a backlog is not hoarded by one worker
while others have room. A worker that finds its queues drained sleeps until a NOTIFY,
the next row's eta or the poll.

Only the worker's main thread uses a :class:`Claims`.
"""

from __future__ import annotations

import time
from typing import Any

from django.utils import timezone

from .. import broker
from ..conf import conf


class Claims:
    """The pace of one worker's claims, over its ``queues``."""

    def __init__(self, queues: list[str], prefetch: int) -> None:
        self.queues = queues
        self.prefetch = prefetch  # rows a worker may hold claimed, running ones included
        self.next_at = 0.0  # monotonic; 0 = claim as soon as there is room
        # Whether the next claim may also reserve rows (claim them beyond the free pool
        # slots, up to the prefetch): true at start, after a NOTIFY for our queues and
        # when a poll is due; spent by a claim that got all it asked for.
        self.reserve_due = True
        self.next_eta_check = 0.0
        self._turn = 0

    def again(self) -> None:
        """Claim, and reserve, as soon as there is room (at start, after a reconnect,
        under a new lease)."""
        self.next_at = 0.0
        self.reserve_due = True

    def notified(self) -> None:
        """Work arrived on one of the queues: claim now, and look at etas again."""
        self.again()
        self.next_eta_check = 0.0

    def limits(self, free: int, buffered: int) -> tuple[int, int]:
        """(rows to claim, of which to start at once) for a round trip that leaves
        ``free`` pool slots empty after starting buffered rows, ``buffered`` rows being
        claimed and not started."""
        if time.monotonic() < self.next_at:
            return 0, 0
        reserve = max(0, self.prefetch - buffered) if self.reserve_due else 0
        return free + reserve, free

    def wait(self, timeout: float, now: float) -> float:
        """``timeout``, shortened to when the next claim is due."""
        if self.next_at:
            return min(timeout, max(0.0, self.next_at - now))
        return timeout

    def order(self) -> list[str]:
        """The queues, starting one further along each time, so that a backlog in one
        queue never starves the others."""
        if len(self.queues) > 1:
            self._turn = (self._turn + 1) % len(self.queues)
            return self.queues[self._turn:] + self.queues[:self._turn]
        return self.queues

    def claimed(self, got: int, wanted: int, conn: Any, poll_interval: float) -> None:
        """After a claim of ``wanted`` rows that got ``got``: go on at once, or, the
        queues drained for now, sleep until a NOTIFY, the next eta or the poll (asking
        the database on ``conn`` for the next eta, at most once a poll interval)."""
        if got >= wanted:
            self.next_at = 0.0
            self.reserve_due = False
            return
        self.reserve_due = True  # the next look (NOTIFY, poll or eta) may reserve
        now = time.monotonic()
        self.next_at = now + poll_interval
        if now >= self.next_eta_check:
            self.next_eta_check = now + conf.worker_poll_interval
            nxt = broker.next_run_at(conn, self.queues)
            if nxt is not None:
                delay = (nxt - timezone.now()).total_seconds()
                self.next_at = min(self.next_at, now + max(0.0, delay))
                # Look again when that time comes: a claim a hair early finds nothing,
                # and must not then sleep a whole poll interval.
                self.next_eta_check = min(self.next_eta_check, self.next_at)


__all__ = ["Claims"]
