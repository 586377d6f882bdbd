"""Connections of djq's own, beside Django's: the worker's broker connection and the
listener that ``AsyncResult.get()`` waits on. Each opens from the Django alias's settings.

Behind a transaction pooler (PgBouncer ``pool_mode = transaction``) a client's
statements may run on a different server session each time: server-side prepared
statements and LISTEN cannot work there. :func:`open_connection` finds out whether an
alias goes through such a pooler (the backend pid the server reports differs from the one
the connection was given at start-up) and prepares nothing through it; LISTEN goes to
``DJQ["listen_database"]`` when set (an alias that reaches PostgreSQL directly), and
without it the listeners are deaf and their users poll (see :func:`listen_alias`)."""

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
    # Nothing is prepared until we know the server session is ours for good.
    conn = psycopg.connect(autocommit=True, prepare_threshold=None, **_params(using, extra))
    # A pooler tracks TimeZone (a reported parameter) and sets it on every server
    # session it lends this client, so the SET holds through it too.
    conn.execute("SET TIME ZONE 'UTC'")
    alias = using or conf.database
    pooled = _pooled.get(alias)
    if pooled is None:
        pooled = _pooled[alias] = behind_pooler(conn)
    if not pooled:
        conn.prepare_threshold = 5
    return conn


async def open_async_connection(using: str | None = None,
                                **extra: Any) -> psycopg.AsyncConnection[Any]:
    """:func:`open_connection` for async callers (it prepares nothing: it may go
    through a pooler)."""
    conn = await psycopg.AsyncConnection.connect(autocommit=True, prepare_threshold=None,
                                                 **_params(using, extra))
    await conn.execute("SET TIME ZONE 'UTC'")
    return conn


#: alias -> whether it reaches PostgreSQL through a pooler (found on first connect)
_pooled: dict[str, bool] = {}


def behind_pooler(conn: psycopg.Connection[Any]) -> bool:
    """Whether ``conn`` goes through a connection pooler such as PgBouncer.

    PostgreSQL gives a client its backend's pid at start-up (BackendKeyData); a pooler
    makes up its own key, since the client's server session changes. So the pid the
    connection was given differs from ``pg_backend_pid()``.
    """
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    return row is None or int(row[0]) != conn.info.backend_pid


def pooled(using: str | None = None) -> bool:
    """Whether alias ``using`` reaches PostgreSQL through a pooler (connects once)."""
    alias = using or conf.database
    if alias not in _pooled:
        open_connection(alias).close()
    return _pooled[alias]


def listen_alias(using: str | None = None) -> str | None:
    """The alias to LISTEN on for the database of ``using``: ``DJQ["listen_database"]``
    when set, else ``using`` itself unless it goes through a pooler, where LISTEN cannot
    work (None: poll instead)."""
    direct = conf.listen_database
    if direct:
        return str(direct)
    alias = using or conf.database
    return None if pooled(alias) else alias


class Listener:
    """A connection that LISTENs on channels and waits for their notifications.

    The connection may run queries too (the worker's does): notifications that arrive
    while a query runs are collected by psycopg's notify handler, the others are read
    from the socket by :meth:`drain`; both come out of :meth:`drain`.

    It connects to :func:`listen_alias` of ``using``. Where there is none (a pooler and
    no ``listen_database``) it is ``deaf``: connected through the pooler, listening to
    nothing, so :meth:`wait` only waits out its timeout and its users poll.
    """

    def __init__(self, channels: Iterable[str], using: str | None = None,
                 **params: Any) -> None:
        self.channels = list(channels)
        self.using = using
        self.pid = os.getpid()
        alias = listen_alias(using)
        self.deaf = alias is None
        self.conn = open_connection(alias or using, **params)
        self.received: list[tuple[str, str]] = []
        self.conn.add_notify_handler(lambda n: self.received.append((n.channel, n.payload)))
        for channel in self.channels if not self.deaf else ():
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
