"""``python manage.py djq_events``: print the live event stream, or run a snapshot camera.

Workers publish events when started with ``-E`` (or ``worker_send_task_events``).
"""

from __future__ import annotations

import datetime
import json
import signal
from collections import OrderedDict
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.module_loading import import_string

from djq.events.dispatcher import EVENTS_CHANNEL
from djq.events.receiver import Receiver
from djq.events.snapshot import evcam, rate

from .djq_worker import configure_logging

HUMAN_TYPES = {"worker-online": "started", "worker-offline": "shutdown",
               "worker-heartbeat": "heartbeat"}


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(0)


class Dumper:
    """Formats events as lines, naming each task by what its first event said."""

    def __init__(self, max_names: int = 10000) -> None:
        self.names: OrderedDict[str, str] = OrderedDict()
        self.max_names = max_names

    def format(self, ev: dict[str, Any]) -> str:
        ev = dict(ev)
        ev.pop("local_received", None)
        for key in ("utcoffset", "pid", "clock"):
            ev.pop(key, None)
        stamp = datetime.datetime.fromtimestamp(float(ev.pop("timestamp", 0.0)),
                                                datetime.timezone.utc)
        kind = str(ev.pop("type", "?")).lower()
        hostname = ev.pop("hostname", "?")
        head = f"{hostname} [{stamp:%Y-%m-%d %H:%M:%S.%f}] {HUMAN_TYPES.get(kind, kind.replace('-', ' '))}"
        if kind.startswith("task-"):
            uuid = str(ev.pop("uuid", ""))
            if kind in ("task-received", "task-sent"):
                label = (f"{ev.pop('name', '?')}({uuid}) args={ev.pop('args', None)} "
                         f"kwargs={ev.pop('kwargs', None)}")
                self.names[uuid] = label
                if len(self.names) > self.max_names:
                    self.names.popitem(last=False)
            else:
                label = self.names.get(uuid, f"({uuid})")
            fields = ", ".join(f"{k}={ev[k]}" for k in sorted(ev) if ev[k] is not None)
            return f"{head}: {label}" + (f" {fields}" if fields else "")
        fields = ", ".join(f"{k}={ev[k]}" for k in sorted(ev))
        return f"{head}" + (f": {fields}" if fields else "")


class Command(BaseCommand):
    help = "Print the event stream (--dump, the default) or run a snapshot camera (--camera)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("-d", "--dump", action="store_true",
                            help="Print events as they arrive (the default)")
        parser.add_argument("--json", action="store_true",
                            help="With --dump: one JSON object per line")
        parser.add_argument("-c", "--camera", default=None, metavar="DOTTED.PATH",
                            help="Take snapshots with this Polaroid subclass, e.g. "
                                 "djq.contrib.snapshots.camera.Camera")
        parser.add_argument("-F", "--frequency", "--freq", type=float, default=1.0,
                            help="Seconds between snapshots (default 1.0)")
        parser.add_argument("-r", "--maxrate", default=None,
                            help="At most this many snapshots, e.g. 10/m, 1/s (default: no "
                                 "limit)")
        parser.add_argument("--cleanup-freq", type=float, default=3600.0,
                            help="Seconds between the camera's cleanups (default 3600)")
        parser.add_argument("--limit", type=int, default=None,
                            help="Stop after this many events")
        parser.add_argument("-l", "--loglevel", default="INFO")

    def handle(self, *args: Any, **options: Any) -> None:
        camera = self.camera(options) if options["camera"] else None
        configure_logging(options["loglevel"])
        signal.signal(signal.SIGTERM, _terminate)
        if camera is not None:
            self.run_camera(camera, options)
        else:
            self.dump(options)

    def camera(self, options: dict[str, Any]) -> Any:
        try:
            camera = import_string(options["camera"])
        except ImportError as exc:
            raise CommandError(f"Cannot import camera {options['camera']!r}: {exc}") from None
        try:
            rate(options["maxrate"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if options["frequency"] <= 0 or options["cleanup_freq"] <= 0:
            raise CommandError("--frequency and --cleanup-freq must be more than 0")
        return camera

    def run_camera(self, camera: Any, options: dict[str, Any]) -> None:
        self.stdout.write(f"-> evcam: Taking snapshots with {options['camera']} "
                          f"(every {options['frequency']} secs.)")
        self.stdout.flush()
        try:
            evcam(camera, freq=options["frequency"], maxrate=options["maxrate"],
                  loglevel=None, cleanup_freq=options["cleanup_freq"], limit=options["limit"])
        except SystemExit as exc:
            if exc.code not in (None, 0):
                raise

    def dump(self, options: dict[str, Any]) -> None:
        dumper = Dumper()
        as_json = options["json"]
        receiver = Receiver()
        banner = f"-> djq_events: Dumping events to stdout (channel {EVENTS_CHANNEL})."
        if as_json:
            self.stderr.write(banner)
            self.stderr.flush()
        else:
            self.stdout.write(banner)
            self.stdout.flush()
        try:
            for ev in receiver.itercapture(limit=options["limit"]):
                line = json.dumps(ev, default=str) if as_json else dumper.format(ev)
                self.stdout.write(line)
                self.stdout.flush()
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            receiver.close()
