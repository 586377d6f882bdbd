"""A small TCP proxy in front of the test database, to cut some workers off from it.

Workers started with ``start_worker(..., proxy=proxy)`` reach PostgreSQL only through
it. :meth:`TcpProxy.cut` drops every open connection and refuses new ones (a network
partition, or a database outage as far as those workers can tell) until
:meth:`TcpProxy.restore`. Loopback only.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

from django.db import connections


class TcpProxy:
    def __init__(self) -> None:
        settings = connections["default"].settings_dict
        host, port = settings.get("HOST") or "", int(settings.get("PORT") or 5432)
        if not host or host.startswith("/"):  # a Unix socket directory
            directory = host or "/var/run/postgresql"
            self.target: Any = os.path.join(directory, f".s.PGSQL.{port}")
            self.family = socket.AF_UNIX
        else:
            self.target = (host, port)
            self.family = socket.AF_INET
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        self.blocked = False
        self.closed = False
        threading.Thread(target=self._accept, name="test-proxy", daemon=True).start()

    def cut(self) -> None:
        """Drop every connection through the proxy and refuse new ones."""
        with self.lock:
            self.blocked = True
            sockets, self.open = self.open, []
        for s in sockets:
            _close(s)

    def restore(self) -> None:
        with self.lock:
            self.blocked = False

    def close(self) -> None:
        self.closed = True
        self.cut()
        _close(self.listener)

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                blocked = self.blocked
            if blocked:
                _close(client)
                continue
            try:
                server = socket.socket(self.family, socket.SOCK_STREAM)
                server.connect(self.target)
            except OSError:
                _close(client)
                continue
            with self.lock:
                self.open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    _close(source)
    _close(sink)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass
