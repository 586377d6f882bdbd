"""A small timer: functions called every so many seconds from one background thread.

Cameras take any object with ``call_repeatedly(secs, fun)`` returning an entry with
``cancel()``; this is the one they get by default.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections, connections

logger = logging.getLogger(__name__)


class Entry:
    """A scheduled call. ``cancel()`` stops it; calling the entry runs it now."""

    def __init__(self, fun: Callable[..., Any], secs: float, args: tuple[Any, ...] = (),
                 kwargs: dict[str, Any] | None = None) -> None:
        self.fun = fun
        self.secs = secs
        self.args = args
        self.kwargs = kwargs or {}
        self.canceled = False

    def __call__(self) -> Any:
        return self.fun(*self.args, **self.kwargs)

    def cancel(self) -> None:
        self.canceled = True

    def __repr__(self) -> str:
        return f"<Entry: {getattr(self.fun, '__qualname__', self.fun)!r} every {self.secs}s>"


class Timer:
    """Runs entries on one daemon thread, started with the first entry.

    A repeating entry runs every ``secs`` seconds from its previous due time; one that
    falls behind skips the runs it missed rather than bursting to catch up. An entry
    that raises is logged and keeps its schedule.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._queue: list[tuple[float, int, Entry]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def call_repeatedly(self, secs: float, fun: Callable[..., Any], args: tuple[Any, ...] = (),
                        kwargs: dict[str, Any] | None = None, priority: int = 0) -> Entry:
        """Call ``fun`` every ``secs`` seconds, the first time ``secs`` from now."""
        if secs <= 0:
            raise ValueError("secs must be more than 0")
        entry = Entry(fun, float(secs), args, kwargs)
        self._enter(self.clock() + entry.secs, entry)
        return entry

    def _enter(self, due: float, entry: Entry) -> None:
        with self._cond:
            heapq.heappush(self._queue, (due, next(self._counter), entry))
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._run, name="djq-timer",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            connections.close_all()  # this thread's own Django connections

    def _serve(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        return
                    while self._queue and self._queue[0][2].canceled:
                        heapq.heappop(self._queue)
                    if not self._queue:
                        self._cond.wait()
                        continue
                    due = self._queue[0][0]
                    wait = due - self.clock()
                    if wait <= 0:
                        _, _, entry = heapq.heappop(self._queue)
                        break
                    self._cond.wait(min(wait, 1.0))
            try:
                entry()
            except Exception:  # noqa: BLE001 - one bad call must not end the timer
                logger.exception("Timer: %r raised", entry)
            finally:
                # Each call is like a request: a connection it broke or kept past
                # CONN_MAX_AGE is not the next one's.
                close_old_connections()
            if not entry.canceled:
                now = self.clock()
                nxt = due + entry.secs
                if nxt <= now:
                    nxt = now + entry.secs
                with self._cond:
                    heapq.heappush(self._queue, (nxt, next(self._counter), entry))

    def stop(self) -> None:
        """Cancel every entry and end the thread."""
        with self._cond:
            self._stopped = True
            self._queue.clear()
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)

    def __len__(self) -> int:
        return sum(1 for _, _, e in self._queue if not e.canceled)


__all__ = ["Timer", "Entry"]
