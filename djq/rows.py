"""The values that travel between Python and the queue's rows, each the one owner of its
encoding: a :class:`Message` as it is enqueued, a :class:`Claimed` row as a worker runs
it, an :class:`Outcome` as it is written back, a chord's counter, an orphaned row.

``to_json`` gives what goes into a statement's JSON parameter (or over a pool's pipe),
``from_json`` takes it back, ``from_row`` builds the value from a row a statement
returned. The positions of the JSON arrays are those the statements of ``djq/sql`` read
(``e->>0`` ...): change one, change both.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from collections.abc import Sequence
from typing import Any

from .status import Status


def _iso(value: datetime.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _text(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """A task row as it is enqueued."""

    id: uuid.UUID
    name: str
    queue: str
    priority: int
    args: str
    kwargs: str
    options: str
    run_at: datetime.datetime
    date_created: datetime.datetime
    eta: datetime.datetime | None = None
    expires: datetime.datetime | None = None
    retries: int = 0
    parent_id: uuid.UUID | None = None
    root_id: uuid.UUID | None = None
    group_id: uuid.UUID | None = None
    status: int = Status.WAITING  # DEFERRED rows go through broker.enqueue_canvas()
    waiting_on: uuid.UUID | None = None  # a task id or a chord's group id
    owner: str | None = None  # the API's user (api_owner_scoped); one-row enqueue only
    canvas: str | None = None  # a canvas row's flags (JSON), read by the canvas trigger

    def to_json(self) -> list[Any]:
        """One element of the ``rows_from_json`` parameter (djq/sql/queue.sql)."""
        return [str(self.id), self.name, self.queue, self.priority, self.args, self.kwargs,
                self.options, self.retries, _iso(self.eta), self.run_at.isoformat(),
                _iso(self.expires), _text(self.parent_id), _text(self.root_id),
                _text(self.group_id), self.date_created.isoformat(), int(self.status),
                _text(self.waiting_on), self.canvas]

    def to_values(self) -> tuple[Any, ...]:
        """The parameters of ``enqueue_one``."""
        return (self.id, self.name, self.queue, self.priority, self.args, self.kwargs,
                self.options, self.retries, self.eta, self.run_at, self.expires,
                self.parent_id, self.root_id, self.group_id, self.date_created, self.owner)

    def to_copy(self, state: str) -> tuple[Any, ...]:
        """One row for ``copy_tasks``, in its columns' order."""
        return (self.id, self.name, state, self.status, self.queue, self.priority, self.args,
                self.kwargs, self.options, self.retries, self.eta, self.run_at, self.expires,
                self.parent_id, self.root_id, self.group_id, self.date_created,
                self.waiting_on, self.canvas)


@dataclasses.dataclass(frozen=True, slots=True)
class Claimed:
    """A row a worker has claimed: everything needed to run it."""

    id: uuid.UUID
    name: str
    queue: str
    priority: int
    args: str
    kwargs: str
    options: str
    retries: int
    eta: datetime.datetime | None
    expires: datetime.datetime | None
    parent_id: uuid.UUID | None
    root_id: uuid.UUID | None
    group_id: uuid.UUID | None
    run_at: datetime.datetime
    state: str
    started: bool = False  # claimed and marked started in one statement

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Claimed:
        """From a ``'c'`` row of the cycle function, without its kind column."""
        return cls(*row)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able values, to hand to a pool process (read by djq.trace)."""
        return {
            "id": str(self.id), "name": self.name, "queue": self.queue,
            "priority": self.priority, "args": self.args, "kwargs": self.kwargs,
            "options": self.options, "retries": self.retries, "eta": _iso(self.eta),
            "expires": _iso(self.expires), "parent_id": _text(self.parent_id),
            "root_id": _text(self.root_id), "group_id": _text(self.group_id),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """How a claimed task ended, to be written by ``broker.finish``.

    ``status`` is DONE for a final state, WAITING for a retry (``run_at`` then says
    when), and ``delete`` drops the row (a result nobody asked to keep).
    """

    id: uuid.UUID
    state: str
    result: str | None
    traceback: str | None
    date_done: datetime.datetime
    status: int = Status.DONE
    retries: int | None = None
    run_at: datetime.datetime | None = None
    delete: bool = False
    args: str | None = None
    kwargs: str | None = None

    def to_json(self) -> list[Any]:
        """One element of the finish functions' JSON parameter (djq_finish_v1 reads
        it), and what a pool process sends back for it."""
        return [str(self.id), self.state, self.result, self.traceback,
                self.date_done.isoformat(), int(self.status), self.retries,
                _iso(self.run_at), self.args, self.kwargs, self.delete]

    @classmethod
    def from_json(cls, v: Sequence[Any]) -> Outcome:
        return cls(
            id=uuid.UUID(v[0]), state=v[1], result=v[2], traceback=v[3],
            date_done=datetime.datetime.fromisoformat(v[4]), status=v[5], retries=v[6],
            run_at=datetime.datetime.fromisoformat(v[7]) if v[7] else None, args=v[8],
            kwargs=v[9], delete=v[10],
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ChordRow:
    """A chord's counter: ``members`` (in order) end, then the rows waiting on
    ``group_id`` start with their results."""

    group_id: uuid.UUID
    members: tuple[uuid.UUID, ...]
    callback_id: uuid.UUID | None = None

    def to_json(self) -> list[Any]:
        """One element of the ``insert_chords`` parameter."""
        return [str(self.group_id), len(self.members), _text(self.callback_id),
                [str(i) for i in self.members]]


@dataclasses.dataclass(frozen=True, slots=True)
class Orphan:
    """An in-flight row held by no live worker."""

    id: uuid.UUID
    name: str
    status: int
    options: str

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Orphan:
        return cls(row[0], row[1], int(row[2]), row[3])


__all__ = ["Message", "Claimed", "Outcome", "ChordRow", "Orphan"]
