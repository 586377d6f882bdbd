"""Snapshot cameras: Celery's ``Polaroid`` and ``evcam``.

A camera holds a :class:`~djq.events.state.State` that the event stream keeps current,
and every ``freq`` seconds takes a snapshot of it: ``on_shutter(state)`` runs while no
event is applied (``state.freeze_while``), at most at ``maxrate`` (a token bucket of
capacity 1, e.g. ``"10/m"``). Every ``cleanup_freq`` seconds ``on_cleanup()`` runs, for
pruning what old shutters stored. Subclass it::

    class PrintCamera(Polaroid):
        clear_after = True  # forget finished tasks after each snapshot

        def on_shutter(self, state):
            print(f"{len(state.tasks)} tasks, {len(state.alive_workers())} workers")

and run it with ``python manage.py djq_events --camera myapp.cameras.PrintCamera``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.dispatch import Signal
from django.utils.module_loading import import_string

from .. import signals
from .receiver import Receiver
from .state import State
from .timer import Timer

logger = logging.getLogger(__name__)

_RATE_MODIFIERS: dict[str, Callable[[float], float]] = {
    "s": lambda n: n, "m": lambda n: n / 60.0, "h": lambda n: n / 3600.0,
}


def rate(value: str | float | int | None) -> float:
    """Celery's rate strings: ``"10/m"`` is 10 a minute, in events per second; ``"5"``
    and ``5`` are 5 a second; None or empty is 0 (no limit)."""
    if not value:
        return 0.0
    if isinstance(value, str):
        ops, _, modifier = value.partition("/")
        try:
            convert = _RATE_MODIFIERS[(modifier or "s").strip().lower()[:1]]
            return convert(float(ops)) or 0.0
        except (KeyError, ValueError) as exc:
            raise ValueError(f"Not a rate: {value!r} (use e.g. '10/s', '10/m', '10/h')") from exc
    return float(value)


class TokenBucket:
    """Kombu's token bucket: ``fill_rate`` tokens a second, at most ``capacity``;
    starts full."""

    def __init__(self, fill_rate: float, capacity: float = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(capacity)
        self.fill_rate = float(fill_rate)
        self.clock = clock
        self._tokens = self.capacity
        self.timestamp = clock()

    def can_consume(self, tokens: float = 1) -> bool:
        """Take ``tokens`` if there are enough; True if taken."""
        have = self._get_tokens()
        if tokens <= have + 1e-9:  # (refills added up in floats fall a hair short)
            self._tokens = max(0.0, have - tokens)
            return True
        return False

    def expected_time(self, tokens: float = 1) -> float:
        """Seconds until ``tokens`` can be taken."""
        have = self._get_tokens()
        tokens = max(tokens, have)
        return (tokens - have) / self.fill_rate if self.fill_rate else float("inf")

    def _get_tokens(self) -> float:
        if self._tokens < self.capacity:
            now = self.clock()
            delta = self.fill_rate * (now - self.timestamp)
            self._tokens = min(self.capacity, self._tokens + delta)
            self.timestamp = now
        return self._tokens


class Polaroid:
    """A camera: takes snapshots of ``state`` every ``freq`` seconds (see the module)."""

    timer: Any = None
    #: Sent (``sender=state``) before each ``on_shutter``; shared by every camera.
    shutter_signal = Signal()
    #: Sent (``sender=state``) before each ``on_cleanup``.
    cleanup_signal = Signal()
    #: Forget finished tasks (``state.clear()``) after each capture.
    clear_after = False

    _tref: Any = None
    _ctref: Any = None

    def __init__(self, state: State, freq: float = 1.0, maxrate: str | float | None = None,
                 cleanup_freq: float = 3600.0, timer: Any = None) -> None:
        self.state = state
        self.freq = float(freq)
        self.cleanup_freq = float(cleanup_freq)
        self._own_timer = timer is None and self.timer is None
        self.timer = timer or self.timer or Timer()
        self.logger = logger
        self.maxrate = TokenBucket(rate(maxrate)) if maxrate else None

    def install(self) -> None:
        """Start taking snapshots (and cleaning up) on the timer."""
        self._tref = self.timer.call_repeatedly(self.freq, self.capture)
        self._ctref = self.timer.call_repeatedly(self.cleanup_freq, self.cleanup)

    def on_shutter(self, state: State) -> None:
        """Override: record ``state``."""

    def on_cleanup(self) -> None:
        """Override: prune what old shutters stored."""

    def cleanup(self) -> None:
        logger.debug("Cleanup: Running...")
        signals.send(self.cleanup_signal, sender=self.state)
        self.on_cleanup()

    def shutter(self) -> None:
        """Take a snapshot now, unless ``maxrate`` says it is too soon."""
        if self.maxrate is None or self.maxrate.can_consume():
            logger.debug("Shutter: %s", self.state)
            signals.send(self.shutter_signal, sender=self.state)
            self.on_shutter(self.state)

    def capture(self) -> None:
        """A shutter with the state frozen; then clear it if ``clear_after``."""
        self.state.freeze_while(self.shutter, clear_after=self.clear_after)

    def cancel(self) -> None:
        """Stop; takes one last capture first, for what arrived since the previous."""
        tref, self._tref = self._tref, None
        ctref, self._ctref = self._ctref, None
        if tref is not None:
            self.capture()
            tref.cancel()
        if ctref is not None:
            ctref.cancel()
        if self._own_timer and isinstance(self.timer, Timer):
            self.timer.stop()

    def __enter__(self) -> Polaroid:
        self.install()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.cancel()


def evcam(camera: str | type[Polaroid] | Callable[..., Polaroid], freq: float = 1.0,
          maxrate: str | float | None = None, loglevel: str | int | None = "INFO",
          cleanup_freq: float = 3600.0, timer: Any = None, using: str | None = None,
          limit: int | None = None, timeout: float | None = None) -> Polaroid:
    """Run ``camera`` (a :class:`Polaroid` class or its dotted path) on the live event
    stream until stopped (Ctrl-C, SIGTERM turned into SystemExit, or ``limit`` events
    or ``timeout`` seconds); returns the camera, cancelled.

    The state starts from the database's truth (the workers alive and the unfinished
    tasks), loaded after the stream is listened to so nothing falls in between.
    """
    if loglevel is not None:
        level = logging.getLevelName(loglevel.upper()) if isinstance(loglevel, str) else loglevel
        if isinstance(level, int):
            logging.getLogger("djq").setLevel(level)
    factory = import_string(camera) if isinstance(camera, str) else camera
    name = camera if isinstance(camera, str) else getattr(camera, "__qualname__", camera)
    logger.debug("-> evcam: Taking snapshots with %s (every %s secs.)", name, freq)
    state = State()
    receiver = Receiver({"*": state.event}, using=using)
    try:
        state.load_from_database(using=using)
        cam = factory(state, freq=freq, maxrate=maxrate, cleanup_freq=cleanup_freq,
                      timer=timer)
        cam.install()
        try:
            receiver.capture(limit=limit, timeout=timeout)
        except KeyboardInterrupt:
            raise SystemExit() from None
        finally:
            cam.cancel()
    finally:
        receiver.close()
    return cam


__all__ = ["Polaroid", "TokenBucket", "evcam", "rate"]
