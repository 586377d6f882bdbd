"""Connections of djq's own, beside Django's: the worker's broker connection and the
listener that ``AsyncResult.get()`` waits on. Each opens from the Django alias's settings."""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Iterable
from typing import Any

import psycopg
from django.db import connections

from .conf import conf


def _params(using: str | None, extra: dict[str, Any]) -> dict[str, Any]:
    params = connections[using or conf.database].get_connection_params()
    for key in ("cursor_factory", "context", "prepare_threshold", "pool"):
        params.pop(key, None)
    params.update(extra)
    # An unreachable server must not hang a worker (or its shutdown) for the minutes a
    # TCP connect can take; the alias's OPTIONS may say otherwise.
    params.setdefault("connect_timeout", 5)
    return params


def open_connection(using: str | None = None, **extra: Any) -> psycopg.Connection[Any]:
    """A new autocommit psycopg connection to the database of alias ``using``."""
    conn = psycopg.connect(autocommit=True, prepare_threshold=5, **_params(using, extra))
    conn.execute("SET TIME ZONE 'UTC'")
    return conn


async def open_async_connection(using: str | None = None,
                                **extra: Any) -> psycopg.AsyncConnection[Any]:
    """:func:`open_connection` for async callers."""
    conn = await psycopg.AsyncConnection.connect(autocommit=True, **_params(using, extra))
    await conn.execute("SET TIME ZONE 'UTC'")
    return conn


class Listener:
    """A connection that LISTENs on channels and waits for their notifications.

    The connection may run queries too (the worker's does): notifications that arrive
    while a query runs are collected by psycopg's notify handler, the others are read
    from the socket by :meth:`drain`; both come out of :meth:`drain`.
    """

    def __init__(self, channels: Iterable[str], using: str | None = None,
                 **params: Any) -> None:
        self.channels = list(channels)
        self.using = using
        self.pid = os.getpid()
        self.conn = open_connection(using, **params)
        self.received: list[tuple[str, str]] = []
        self.conn.add_notify_handler(lambda n: self.received.append((n.channel, n.payload)))
        for channel in self.channels:
            self.conn.execute(f'LISTEN "{channel}"')

    def fileno(self) -> int:
        return self.conn.fileno()

    def drain(self) -> list[tuple[str, str]]:
        """Notifications already received, without waiting."""
        pgconn = self.conn.pgconn
        pgconn.consume_input()
        if pgconn.status != psycopg.pq.ConnStatus.OK:
            raise psycopg.OperationalError("the connection to the server was lost")
        out, self.received = self.received, []
        while (n := pgconn.notifies()) is not None:
            out.append((n.relname.decode(), n.extra.decode()))
        return out

    def wait(self, timeout: float | None) -> list[tuple[str, str]]:
        """Notifications, waiting up to ``timeout`` seconds for the first one."""
        got = self.drain()
        if got:
            return got
        readable, _, _ = select.select([self.conn.fileno()], [], [], timeout)
        return self.drain() if readable else []

    def close(self) -> None:
        if os.getpid() == self.pid:
            self.conn.close()


_local = threading.local()


def result_listener(using: str | None = None) -> Listener:
    """This thread's listener for finished tasks (one per process and thread)."""
    from .broker import DONE_CHANNEL

    key = using or conf.database
    listeners: dict[str, Listener] = getattr(_local, "listeners", None) or {}
    _local.listeners = listeners
    listener = listeners.get(key)
    if listener is None or listener.pid != os.getpid() or listener.conn.closed:
        listener = listeners[key] = Listener([DONE_CHANNEL], using=key)
    return listener


def drop_result_listener(using: str | None = None) -> None:
    listeners: dict[str, Listener] = getattr(_local, "listeners", None) or {}
    listener = listeners.pop(using or conf.database, None)
    if listener is not None:
        try:
            listener.close()
        except Exception:  # noqa: BLE001 - already broken; we only let it go
            pass
