"""``python manage.py djq_beat``: run the periodic-task scheduler alone (workers run one
too unless started with ``--without-beat``; any number may run at once)."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from djq.beat.scheduler import Scheduler
from djq.beat.sync import entries
from djq.exceptions import ImproperlyConfigured

from .djq_worker import configure_logging


class Command(BaseCommand):
    help = "Run djq's periodic-task scheduler (Celery beat) alone."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("-l", "--loglevel", default="INFO")
        parser.add_argument("--max-interval", type=float, default=5.0,
                            help="Longest sleep between rounds, in seconds (default 5)")

    def handle(self, *args: Any, **options: Any) -> None:
        configure_logging(options["loglevel"])
        if options["max_interval"] <= 0:
            raise CommandError("--max-interval must be positive")
        try:
            entries()  # a bad beat_schedule stops the command before it starts
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        scheduler = Scheduler(max_interval=options["max_interval"], hostname="djq_beat")
        done = threading.Event()

        def stop(signum: int, frame: Any) -> None:
            done.set()

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            signal.signal(signum, stop)
        scheduler.start()
        while not done.wait(0.5):
            if scheduler.thread is not None and not scheduler.thread.is_alive():
                break
        scheduler.stop()
        self.stdout.write("djq_beat stopped")
