"""``AsyncResult``: a task's state and result, read from the database by id."""

from __future__ import annotations

import datetime
import time
import uuid
from typing import Any

import psycopg

from . import broker, control, serialization, states
from ._state import current_request
from .db import drop_result_listener, open_async_connection, result_listener
from .exceptions import TaskError, TimeoutError
from .serialization import exception_from_dict


def _next_wait(interval: float, deadline: float | None) -> float:
    """How long one wait for a result lasts: ``interval`` (0.5 s if not positive), cut to
    what is left before ``deadline``; :class:`TimeoutError` once it has passed."""
    wait = interval if interval and interval > 0 else 0.5
    if deadline is not None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("The operation timed out.")
        wait = min(wait, remaining)
    return wait

class AsyncResult:
    """The state and result of a task, by id. Attributes read the database each time."""

    def __init__(self, id: str | uuid.UUID, task_name: str | None = None,
                 using: str | None = None, **kwargs: Any) -> None:
        self.id = str(id)
        self.task_id = self.id
        self._task_name = task_name
        self.using = using
        self._cache: dict[str, Any] | None = None
        self._parent: Any = kwargs.get("parent")  # known when a canvas was sent

    # -- reading -------------------------------------------------------------------------
    def _row(self) -> dict[str, Any] | None:
        if self._cache is not None:
            return self._cache
        try:
            uuid.UUID(self.id)
        except ValueError:
            return None
        row = broker.fetch(self.id, using=self.using)
        if row is not None and row["state"] in states.READY_STATES:
            self._cache = row  # a finished result no longer changes
        return row

    def _decoded_result(self, row: dict[str, Any] | None) -> Any:
        if row is None or row["result"] is None:
            return None
        value = serialization.loads(row["result"])
        if row["state"] in states.EXCEPTION_STATES:
            return exception_from_dict(value)
        return value

    @property
    def state(self) -> str:
        row = self._row()
        return row["state"] if row else states.PENDING

    status = state

    @property
    def result(self) -> Any:
        """The return value, the exception of a failed task, or a custom state's meta."""
        return self._decoded_result(self._row())

    info = result

    @property
    def traceback(self) -> str | None:
        row = self._row()
        return row["traceback"] if row else None

    def _field(self, name: str) -> Any:
        row = self._row()
        return row[name] if row else None

    @property
    def name(self) -> str | None:
        return self._field("name") or self._task_name

    @property
    def args(self) -> Any:
        row = self._row()
        return serialization.loads(row["args"]) if row else None

    @property
    def kwargs(self) -> Any:
        row = self._row()
        return serialization.loads(row["kwargs"]) if row else None

    @property
    def retries(self) -> int | None:
        return self._field("retries")  # type: ignore[no-any-return]

    @property
    def worker(self) -> str | None:
        return self._field("worker")  # type: ignore[no-any-return]

    @property
    def queue(self) -> str | None:
        return self._field("queue")  # type: ignore[no-any-return]

    @property
    def date_created(self) -> datetime.datetime | None:
        return self._field("date_created")  # type: ignore[no-any-return]

    @property
    def date_started(self) -> datetime.datetime | None:
        return self._field("date_started")  # type: ignore[no-any-return]

    @property
    def date_done(self) -> datetime.datetime | None:
        return self._field("date_done")  # type: ignore[no-any-return]

    @property
    def parent(self) -> Any:
        """The result this task's arguments came from: the previous step of a chain, the
        header (a ``GroupResult``) of a chord, or the task that sent it."""
        if self._parent is not None:
            return self._parent
        parent_id = self._field("parent_id")
        if not parent_id:
            return None
        members = broker.group_members(parent_id, using=self.using)
        if members is not None:
            return GroupResult(str(parent_id), [AsyncResult(m, using=self.using)
                                                for m in members], using=self.using)
        return AsyncResult(parent_id, using=self.using)

    @parent.setter
    def parent(self, value: Any) -> None:
        self._parent = value

    @property
    def children(self) -> list[AsyncResult]:
        return [AsyncResult(i, using=self.using) for i in broker.children(self.id, self.using)]

    def ready(self) -> bool:
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        return self.state == states.FAILURE

    # -- waiting -------------------------------------------------------------------------
    def get(self, timeout: float | None = None, propagate: bool = True,
            interval: float = 0.5, disable_sync_subtasks: bool = True,
            **kwargs: Any) -> Any:
        """Wait until the task is ready and return its result.

        Waits on LISTEN/NOTIFY: each finished task wakes its readers, so this does not
        poll; ``interval`` only bounds how long one wait lasts before the row is read
        again. Raises :class:`djq.exceptions.TimeoutError` after ``timeout`` seconds, and
        the task's own exception when it failed and ``propagate`` is true.
        """

        if disable_sync_subtasks and current_request() is not None:
            raise RuntimeError(
                "Never call result.get() within a task: it can deadlock the worker "
                "(pass disable_sync_subtasks=False if you must)"
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        listener = None
        while True:
            if listener is None:
                try:
                    listener = result_listener(self.using)
                except psycopg.Error:
                    listener = None  # fall back to reading every ``interval``
            row = self._row()
            if row is not None and row["state"] in states.READY_STATES:
                return self._finish(row, propagate)
            wait = _next_wait(interval, deadline)
            if listener is None:
                time.sleep(wait)
                continue
            try:
                self._wait_for(listener, wait)
            except psycopg.Error:
                drop_result_listener(self.using)
                listener = None

    def _wait_for(self, listener: Any, wait: float) -> None:
        end = time.monotonic() + wait
        while True:
            for _, payload in listener.wait(max(0.0, end - time.monotonic())):
                if self.id in payload.split(","):
                    return
            if time.monotonic() >= end:
                return

    wait = get

    async def aget(self, timeout: float | None = None, propagate: bool = True,
                   interval: float = 0.5) -> Any:
        """:meth:`get` for async callers: waits on the same NOTIFY (a LISTEN connection
        of its own, for the wait) without blocking the event loop."""

        deadline = None if timeout is None else time.monotonic() + timeout
        conn = await open_async_connection(self.using,
                                           application_name="djq AsyncResult.aget")
        try:
            await conn.execute(f'LISTEN "{broker.DONE_CHANNEL}"')
            while True:
                row = self._cache or await self._aread(conn)
                if row is not None and row["state"] in states.READY_STATES:
                    self._cache = row  # a finished result no longer changes
                    return self._finish(row, propagate)
                wait = _next_wait(interval, deadline)
                async for notify in conn.notifies(timeout=wait):
                    if self.id in notify.payload.split(","):
                        break
        finally:
            await conn.close()

    async def _aread(self, conn: Any) -> dict[str, Any] | None:
        try:
            uuid.UUID(self.id)
        except ValueError:
            return None
        return await broker.afetch(conn, self.id)

    def _finish(self, row: dict[str, Any], propagate: bool) -> Any:
        value = self._decoded_result(row)
        if propagate and row["state"] in states.PROPAGATE_STATES:
            if isinstance(value, BaseException):
                raise value
            raise TaskError(value)
        return value

    # -- acting ---------------------------------------------------------------------------
    def forget(self) -> None:
        """Delete the stored result; the id then reads PENDING."""
        broker.forget(self.id, using=self.using)
        self._cache = None

    def revoke(self, terminate: bool = False, signal: str = "SIGTERM", **kwargs: Any) -> None:
        """Revoke the task: a task not yet started never runs."""

        control.revoke(self.id, terminate=terminate, signal=signal, using=self.using)
        self._cache = None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncResult):
            return other.id == self.id
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.id}>"

    def __str__(self) -> str:
        return self.id


class EagerResult(AsyncResult):
    """The result of a task run inline (``apply()`` or ``task_always_eager``)."""

    def __init__(self, id: str, ret_value: Any, state: str, traceback: str | None = None,
                 name: str | None = None) -> None:
        super().__init__(id, task_name=name)
        self._result = ret_value
        self._state = state
        self._traceback = traceback

    @property
    def state(self) -> str:
        return self._state

    status = state

    @property
    def result(self) -> Any:
        return self._result

    info = result

    @property
    def traceback(self) -> str | None:
        return self._traceback

    def get(self, timeout: float | None = None, propagate: bool = True,
            interval: float = 0.5, disable_sync_subtasks: bool = True,
            **kwargs: Any) -> Any:
        if propagate and self._state in states.PROPAGATE_STATES and isinstance(
                self._result, BaseException):
            raise self._result
        return self._result

    wait = get

    def forget(self) -> None:
        pass

    def revoke(self, *args: Any, **kwargs: Any) -> None:
        self._state = states.REVOKED


class ResultSet:
    """Several results read and waited on together (one query for all of them)."""

    def __init__(self, results: Any = None, using: str | None = None, **kwargs: Any) -> None:
        self.results: list[Any] = list(results or [])
        self.using = using

    # -- the list --------------------------------------------------------------------
    def add(self, result: Any) -> None:
        if result not in self.results:
            self.results.append(result)

    def remove(self, result: Any) -> None:
        if isinstance(result, str):
            result = AsyncResult(result, using=self.using)
        try:
            self.results.remove(result)
        except ValueError as exc:
            raise KeyError(result) from exc

    def discard(self, result: Any) -> None:
        try:
            self.remove(result)
        except KeyError:
            pass

    def update(self, results: Any) -> None:
        self.results.extend(r for r in results if r not in self.results)

    def clear(self) -> None:
        self.results[:] = []

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Any:
        return iter(self.results)

    def __getitem__(self, index: Any) -> Any:
        return self.results[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ResultSet):
            return other.results == self.results
        return NotImplemented

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: [{', '.join(str(r.id) for r in self.results)}]>"

    @property
    def supports_native_join(self) -> bool:
        return True

    # -- state, read for every member at once -----------------------------------------
    def _leaves(self) -> list[AsyncResult]:
        out: list[AsyncResult] = []
        for r in self.results:
            if isinstance(r, ResultSet):
                out.extend(r._leaves())
            else:
                out.append(r)
        return out

    def _load(self, only: set[str] | None = None) -> None:
        """Read the rows of members not known to be finished (or just ``only`` of them)
        in one query; finished ones are kept on their result."""
        want = [leaf for leaf in self._leaves()
                if not isinstance(leaf, EagerResult) and leaf._cache is None
                and (only is None or leaf.id in only)]
        by_using: dict[str | None, list[AsyncResult]] = {}
        for leaf in want:
            try:
                uuid.UUID(leaf.id)
            except ValueError:
                continue  # never a stored task: PENDING
            by_using.setdefault(leaf.using or self.using, []).append(leaf)
        for using, leaves in by_using.items():
            rows = broker.fetch_many([leaf.id for leaf in leaves], using=using)
            for leaf in leaves:
                row = rows.get(str(uuid.UUID(leaf.id)))
                if row is not None:
                    leaf._snapshot = row  # type: ignore[attr-defined]
                    if row["state"] in states.READY_STATES:
                        leaf._cache = row

    @staticmethod
    def _state_of(result: Any) -> str:
        if isinstance(result, ResultSet):
            raise TypeError("a group has no single state")
        if isinstance(result, EagerResult):
            return result.state
        row = result._cache or getattr(result, "_snapshot", None)
        return str(row["state"]) if row else states.PENDING

    @classmethod
    def _is_ready(cls, result: Any) -> bool:
        if isinstance(result, ResultSet):
            return all(cls._is_ready(r) for r in result.results)
        if isinstance(result, EagerResult):
            return True
        return bool(result._cache is not None)

    @classmethod
    def _value(cls, result: Any, propagate: bool) -> Any:
        if isinstance(result, ResultSet):
            return [cls._value(r, propagate) for r in result.results]
        if isinstance(result, EagerResult):
            return result.get(propagate=propagate)
        return result._finish(result._cache, propagate)

    def ready(self) -> bool:
        """Whether every task has finished."""
        self._load()
        return self._is_ready(self)

    def waiting(self) -> bool:
        """Whether any task has not finished yet."""
        return not self.ready()

    def successful(self) -> bool:
        """Whether every task finished with success."""
        self._load()
        return all(self._state_of(r) == states.SUCCESS for r in self._leaves())

    def failed(self) -> bool:
        """Whether any task failed."""
        self._load()
        return any(self._state_of(r) == states.FAILURE for r in self._leaves())

    def completed_count(self) -> int:
        """How many of the tasks finished with success."""
        self._load()
        return sum(1 for r in self.results if (
            all(self._state_of(x) == states.SUCCESS for x in r._leaves())
            if isinstance(r, ResultSet) else self._state_of(r) == states.SUCCESS))

    # -- acting -----------------------------------------------------------------------
    def revoke(self, connection: Any = None, terminate: bool = False,
               signal: str | None = None, wait: bool = False, timeout: float | None = None,
               **kwargs: Any) -> None:
        """Revoke every task (waiting and deferred ones in one statement)."""

        leaves = [r for r in self._leaves() if not isinstance(r, EagerResult)]
        control.revoke_many([r.id for r in leaves], terminate=terminate,
                            signal=signal or "SIGTERM", using=self.using)
        for leaf in leaves:
            leaf._cache = None

    def forget(self) -> None:
        for leaf in self._leaves():
            leaf.forget()

    # -- waiting ----------------------------------------------------------------------
    def get(self, timeout: float | None = None, propagate: bool = True, interval: float = 0.5,
            callback: Any = None, no_ack: bool = True, on_message: Any = None,
            disable_sync_subtasks: bool = True, on_interval: Any = None,
            **kwargs: Any) -> list[Any]:
        """The results, in order, once every task has finished (see :meth:`join`)."""
        return self.join(timeout=timeout, propagate=propagate, interval=interval,
                         callback=callback, on_message=on_message,
                         disable_sync_subtasks=disable_sync_subtasks, on_interval=on_interval)

    def join(self, timeout: float | None = None, propagate: bool = True,
             interval: float = 0.5, callback: Any = None, no_ack: bool = True,
             on_message: Any = None, disable_sync_subtasks: bool = True,
             on_interval: Any = None, **kwargs: Any) -> list[Any]:
        """Wait for every task and return their results in order.

        As in Celery, the results are taken in order: the first failed one (before any
        unfinished one) is raised when ``propagate`` is true. ``timeout`` bounds the
        whole wait (:class:`djq.exceptions.TimeoutError`). Waits on LISTEN/NOTIFY and
        reads only the members whose end was announced (all of them every ``interval``).
        With ``callback``, each ``callback(task_id, value)`` is called in order instead
        and an empty list returned.
        """

        if disable_sync_subtasks and current_request() is not None:
            raise RuntimeError(
                "Never call result.get() within a task: it can deadlock the worker "
                "(pass disable_sync_subtasks=False if you must)"
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        wait = interval if interval and interval > 0 else 0.5
        listener = None
        only: set[str] | None = None
        while True:
            if listener is None and not self._is_ready(self):
                try:
                    listener = result_listener(self.using)
                except psycopg.Error:
                    listener = None
                only = None  # read everything after listening: nothing is missed
            self._load(only)
            values: list[Any] = []
            for r in self.results:
                if not self._is_ready(r):
                    break
                values.append(self._value(r, propagate))
            else:
                if callback is not None:
                    for r, value in zip(self.results, values):
                        callback(r.id, value)
                    return []
                return values
            if on_interval is not None:
                on_interval()
            pending = {leaf.id for leaf in self._leaves() if not self._is_ready(leaf)}
            step = wait
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("The operation timed out.")
                step = min(step, remaining)
            if listener is None:
                time.sleep(step)
                only = None
                continue
            try:
                only = self._wait_for(listener, pending, step)
            except psycopg.Error:
                drop_result_listener(self.using)
                listener = None
                only = None

    join_native = join

    @staticmethod
    def _wait_for(listener: Any, pending: set[str], wait: float) -> set[str] | None:
        """Ids of ``pending`` announced within ``wait`` seconds; None if the time ran out
        (then every pending member is read again)."""
        end = time.monotonic() + wait
        seen: set[str] = set()
        while True:
            for _, payload in listener.wait(max(0.0, end - time.monotonic())):
                seen.update(i for i in payload.split(",") if i in pending)
            if seen:
                # Take what else arrived meanwhile, then read those rows.
                for _, payload in listener.drain():
                    seen.update(i for i in payload.split(",") if i in pending)
                return seen
            if time.monotonic() >= end:
                return None


class GroupResult(ResultSet):
    """The result of a group: its id and its members' results, in order.

    ``save()`` stores it so that ``GroupResult.restore(id)`` rebuilds it anywhere.
    """

    def __init__(self, id: str | uuid.UUID | None = None, results: Any = None,
                 parent: Any = None, using: str | None = None, **kwargs: Any) -> None:
        super().__init__(results, using=using)
        self.id = str(id) if id is not None else str(uuid.uuid4())
        self._parent = parent

    @property
    def parent(self) -> Any:
        return self._parent

    @parent.setter
    def parent(self, value: Any) -> None:
        self._parent = value

    @property
    def children(self) -> list[Any]:
        return self.results

    def __eq__(self, other: object) -> bool:
        if isinstance(other, GroupResult):
            return other.id == self.id and other.results == self.results
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return (f"<{type(self).__name__}: {self.id} "
                f"[{', '.join(str(r.id) for r in self.results)}]>")

    def __str__(self) -> str:
        return self.id

    def as_tuple(self) -> tuple[Any, ...]:
        return ((self.id, getattr(self.parent, "id", None)),
                [r.as_tuple() if isinstance(r, GroupResult) else (r.id, None)
                 for r in self.results])

    def save(self, backend: Any = None) -> GroupResult:
        """Store the group (and the groups nested in it) for :meth:`restore`."""
        groups: list[tuple[str, list[str]]] = []

        def collect(g: GroupResult) -> None:
            groups.append((g.id, [str(r.id) for r in g.results]))
            for r in g.results:
                if isinstance(r, GroupResult):
                    collect(r)

        collect(self)
        broker.save_groups(groups, using=self.using)
        return self

    def delete(self, backend: Any = None) -> None:
        """Remove the saved group."""
        broker.delete_group(self.id, using=self.using)

    def forget(self) -> None:
        super().forget()
        self.delete()

    @classmethod
    def restore(cls, id: str | uuid.UUID, backend: Any = None, app: Any = None,
                using: str | None = None) -> GroupResult | None:
        """The group saved under ``id``, or None."""
        try:
            saved = broker.restore_groups(id, using=using)
        except ValueError:
            return None

        def build(gid: str) -> GroupResult:
            return cls(gid, [build(m) if m in saved and m != gid else
                             AsyncResult(m, using=using) for m in saved[gid]], using=using)

        key = str(uuid.UUID(str(id)))
        return build(key) if key in saved else None


__all__ = ["AsyncResult", "EagerResult", "GroupResult", "ResultSet", "exception_from_dict"]
