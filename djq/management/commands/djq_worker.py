"""``python manage.py djq_worker``: run a worker."""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from djq.conf import conf
from djq.utils.log import TaskFormatter
from djq.worker import Worker
from djq.worker.timeouts import warn_time_limits


def configure_logging(level: str) -> None:
    """Log djq's worker and task records to stderr at ``level`` (Celery's -l)."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise CommandError(f"Unknown log level {level!r}")
    log = logging.getLogger("djq")  # task loggers are children: djq.task.<module>
    log.setLevel(numeric)
    if not any(isinstance(h.formatter, TaskFormatter) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(TaskFormatter())
        log.addHandler(handler)
        log.propagate = False


class Command(BaseCommand):
    help = "Start a djq worker."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("-c", "--concurrency", type=int, default=None,
                            help="Number of pool processes/threads (default: CPU count)")
        parser.add_argument("-Q", "--queues", default=None,
                            help="Comma-separated queues to consume (default: the default queue)")
        parser.add_argument("-P", "--pool", default="prefork",
                            choices=["prefork", "threads", "solo"])
        parser.add_argument("--prefetch-multiplier", type=int, default=None)
        parser.add_argument("-n", "--hostname", default=None, help="Worker name")
        parser.add_argument("--max-tasks-per-child", type=int, default=None)
        parser.add_argument("--max-memory-per-child", type=int, default=None,
                            help="KiB of resident memory after which a pool process is "
                                 "replaced, once its task is done (prefork)")
        parser.add_argument("-E", "--task-events", action="store_true", default=None,
                            help="Send task events")
        parser.add_argument("-l", "--loglevel", default="WARNING",
                            help="DEBUG, INFO, WARNING (default, as Celery's), ERROR")
        parser.add_argument("--without-beat", action="store_true",
                            help="Do not run the periodic-task scheduler in this worker")

    def handle(self, *args: Any, **options: Any) -> None:
        configure_logging(options["loglevel"])
        for key in ("concurrency", "prefetch_multiplier", "max_tasks_per_child",
                    "max_memory_per_child"):
            if options[key] is not None and options[key] < (0 if key == "prefetch_multiplier"
                                                            else 1):
                raise CommandError(f"--{key.replace('_', '-')} must be 1 or more")
        pool = options["pool"]
        queues = [q.strip() for q in (options["queues"] or "").split(",") if q.strip()]
        if pool != "prefork":
            for key in ("max_tasks_per_child", "max_memory_per_child"):
                if options[key] is not None:
                    raise CommandError(
                        f"--{key.replace('_', '-')} recycles pool processes: -P {pool} has "
                        "none (use -P prefork)")
            warn_time_limits(pool, queues or [conf.task_default_queue])
        if not options["without_beat"]:
            from djq.beat.sync import entries
            from djq.exceptions import ImproperlyConfigured

            try:
                entries()  # a bad beat_schedule stops the worker before it starts
            except ImproperlyConfigured as exc:
                raise CommandError(str(exc)) from exc
        worker = Worker(
            concurrency=options["concurrency"], queues=queues or None, pool=pool,
            prefetch_multiplier=options["prefetch_multiplier"], hostname=options["hostname"],
            max_tasks_per_child=options["max_tasks_per_child"],
            max_memory_per_child=options["max_memory_per_child"],
            send_events=options["task_events"], beat=not options["without_beat"],
        )
        worker.install_signal_handlers()
        code = worker.run()
        if code:
            sys.exit(code)
