"""Listening to the event stream: Celery's ``EventReceiver`` on a LISTEN connection."""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import psycopg

from ..db import Listener
from ..exceptions import ImproperlyConfigured
from .dispatcher import EVENTS_CHANNEL, utcoffset

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Any]


def adjust_timestamp(timestamp: float, offset: int) -> float:
    """Celery's: a sender's timestamp moved by the difference of UTC offsets (hours)."""
    return timestamp - (offset - utcoffset()) * 3600


class Receiver:
    """Calls ``handlers[event type]`` (or ``handlers["*"]``) for each event received.

    ``capture()`` runs until :attr:`should_stop` is set, ``limit`` events have been
    handled or ``timeout`` seconds have passed. Each event gets ``local_received`` (when
    it arrived here) and its ``timestamp`` adjusted to this machine's UTC offset, as in
    Celery. The LISTEN starts when the receiver is made, so nothing sent after that is
    missed; a lost connection is reopened (events sent meanwhile are lost, as they are
    for any monitor that is not listening).
    """

    def __init__(self, handlers: dict[str, Handler] | None = None, using: str | None = None,
                 channel: str = EVENTS_CHANNEL) -> None:
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self.using = using
        self.channel = channel
        self.should_stop = False
        self.listener: Listener | None = None
        self._pending: deque[dict[str, Any]] = deque()  # received, not yet handled
        self._connect()

    def _connect(self) -> None:
        self.listener = Listener([self.channel], self.using, application_name="djq events")
        if self.listener.deaf:
            self.listener.close()
            raise ImproperlyConfigured(
                "Events need LISTEN, which a transaction pooler cannot carry: set "
                "DJQ['listen_database'] to an alias that reaches PostgreSQL directly")

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        if self.listener is not None:
            try:
                self.listener.close()
            finally:
                self.listener = None

    # -- decoding -------------------------------------------------------------------------
    @staticmethod
    def decode(payload: str, now: float | None = None) -> list[dict[str, Any]]:
        """The events of one NOTIFY payload, with ``local_received`` set."""
        try:
            events = json.loads(payload)
        except ValueError:
            logger.warning("Ignoring a malformed event payload: %.200r", payload)
            return []
        if isinstance(events, dict):
            events = [events]
        received = time.time() if now is None else now
        out = []
        for ev in events:
            if not isinstance(ev, dict) or "type" not in ev:
                continue
            ev["local_received"] = received
            if "utcoffset" in ev and isinstance(ev.get("timestamp"), (int, float)):
                try:
                    ev["timestamp"] = adjust_timestamp(ev["timestamp"], int(ev["utcoffset"]))
                except (TypeError, ValueError):
                    pass
            out.append(ev)
        return out

    def process(self, type_: str, ev: dict[str, Any]) -> None:
        handler = self.handlers.get(type_) or self.handlers.get("*")
        if handler is not None:
            handler(ev)

    # -- consuming ------------------------------------------------------------------------
    def itercapture(self, limit: int | None = None,
                    timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Yield events as they arrive (after handling them), within the bounds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        count = 0
        backoff = 0.5
        while not self.should_stop and (limit is None or count < limit):
            if self._pending:
                ev = self._pending.popleft()
                self.process(ev["type"], ev)
                count += 1
                yield ev
                continue
            wait = 0.5
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return
            try:
                if self.listener is None:
                    self._connect()
                assert self.listener is not None
                notifications = self.listener.wait(wait)
                backoff = 0.5
            except psycopg.Error as exc:
                logger.error("Event stream: database connection lost (%s); reconnecting", exc)
                self.close()
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            for _channel, payload in notifications:
                self._pending.extend(self.decode(payload))

    def capture(self, limit: int | None = None, timeout: float | None = None) -> int:
        """Handle events until stopped (or ``limit`` events, or ``timeout`` seconds);
        returns how many were handled."""
        return sum(1 for _ in self.itercapture(limit=limit, timeout=timeout))


__all__ = ["Receiver", "adjust_timestamp"]
