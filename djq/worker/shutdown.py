"""How a worker is asked to stop (RQ's ``request_stop``/``request_force_stop``), and
the self-pipe that wakes its main loop from a signal handler or another thread.

Celery's signals: SIGTERM asks for a warm shutdown, SIGQUIT for a cold one, Ctrl+C for
a warm one and, pressed again, a cold one. What each stop does is the consumer's
(``Worker._shutdown``).
"""

from __future__ import annotations

import enum
import logging
import signal
import socket
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("djq.worker")


class Stop(enum.IntEnum):
    """How far a worker has been asked to stop; each step includes the one before, and
    a request never steps back."""

    NO = 0  # running
    WARM = 1  # claim nothing more, hand claimed rows back, let running tasks finish
    COLD = 2  # and kill the running tasks now


class Wakeup:
    """A socket pair: :meth:`wake` (safe in a signal handler and from any thread) makes
    the main loop's wait on :attr:`fd` return."""

    def __init__(self) -> None:
        self.fd, self._w = socket.socketpair()
        self.fd.setblocking(False)
        self._w.setblocking(False)

    def wake(self) -> None:
        try:
            self._w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # already due to wake

    def drain(self) -> None:
        try:
            while self.fd.recv(4096):
                pass
        except BlockingIOError:
            pass


class StopRequests:
    """The worker's stop state, set by its signal handlers (which run in its main
    thread, between two bytecodes of its loop)."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self.state = Stop.NO
        self.sigterms = 0
        self.sigints = 0
        self._wake = wake

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGINT, self._on_sigint)
        signal.signal(signal.SIGQUIT, self._on_sigquit)

    def request(self, stop: Stop) -> None:
        """Ask for ``stop`` (or keep the further one already asked for)."""
        self.state = max(self.state, stop)
        self._wake()

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.sigterms += 1
        if self.state < Stop.WARM:
            logger.warning("worker: Warm shutdown (SIGTERM)")
        self.request(Stop.WARM)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.sigints += 1
        if self.sigints == 1:
            logger.warning("worker: Hitting Ctrl+C again will terminate all running tasks!")
            logger.warning("worker: Warm shutdown (MainProcess)")
            self.request(Stop.WARM)
        else:
            logger.warning("worker: Cold shutdown (MainProcess)")
            self.request(Stop.COLD)

    def _on_sigquit(self, signum: int, frame: Any) -> None:
        logger.warning("worker: Cold shutdown (SIGQUIT)")
        self.request(Stop.COLD)


__all__ = ["Stop", "StopRequests", "Wakeup"]
