"""``python manage.py djq_demo``: the whole demo in one command (what ``make demo`` runs).

Migrates, gives the ``admin`` superuser a fresh password, starts a worker and the web
server as child processes, enqueues a few sample tasks and waits for Ctrl-C. Either
child dying stops the other and fails the command.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

START_TIMEOUT = 30.0  # seconds for the web server and the worker to come up
STOP_TIMEOUT = 15.0  # a warm worker shutdown lets running tasks (long_task: 10 s) end


class Stopped(Exception):
    """SIGINT or SIGTERM arrived."""


class Command(BaseCommand):
    help = "Run the djq demo: migrate, admin user, worker, web server and sample tasks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000, help="Web server port")
        parser.add_argument("-c", "--concurrency", type=int, default=2,
                            help="Worker pool processes (default 2)")
        parser.add_argument("--no-samples", action="store_true",
                            help="Do not enqueue the sample tasks")

    def handle(self, *args: Any, **options: Any) -> None:
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.signalled = 0
        signal.signal(signal.SIGINT, self.on_signal)
        signal.signal(signal.SIGTERM, self.on_signal)
        port: int = options["port"]
        try:
            call_command("migrate", verbosity=0, interactive=False)
            password = self.reset_admin()
            self.say(f"Admin user:     admin\nAdmin password: {password}")
            since = self.last_worker_id()
            self.start_children(port, options["concurrency"])
            self.wait_until(lambda: answers(f"http://127.0.0.1:{port}/admin/login/"),
                            "the web server to answer")
            self.wait_until(lambda: self.worker_ready(since), "the worker to be ready")
            if not options["no_samples"]:
                self.enqueue_samples()
            connections.close_all()  # nothing more to do in the database
            base = f"http://127.0.0.1:{port}"
            self.say(f"Admin:   {base}/admin/ (user admin, password {password})\n"
                     f"Monitor: {base}/djq/\n"
                     f"API:     {base}/api/djq/ (Swagger UI at {base}/api/djq/docs/)\n"
                     "Press Ctrl-C to stop.")
            while True:
                self.tick()
                time.sleep(0.2)
        except Stopped:
            self.say("Stopping the worker and the web server...")
        finally:
            self.stop_children()
        self.say("Stopped.")

    def say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()

    def on_signal(self, signum: int, frame: Any) -> None:
        self.signalled = signum

    def reset_admin(self) -> str:
        """Create the ``admin`` superuser, or reset its password; returns the password."""
        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(
            username="admin", defaults={"email": "admin@example.com"})
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()
        return password

    def start_children(self, port: int, concurrency: int) -> None:
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        commands = {
            "worker": [*manage, "djq_worker", "-c", str(concurrency), "-l", "INFO"],
            # --noreload: one process to stop, no autoreloader child.
            "web server": [*manage, "runserver", "--noreload", f"127.0.0.1:{port}"],
        }
        for name, command in commands.items():
            self.tick()
            # Same process group: a terminal's Ctrl-C reaches them too; stop_children()
            # makes sure of the rest. The environment (DATABASE_URL) passes through.
            self.children[name] = subprocess.Popen(command, cwd=settings.BASE_DIR)
        self.say(", ".join(f"{name} pid {p.pid}" for name, p in self.children.items()))

    def tick(self) -> None:
        """Raise Stopped on a signal, CommandError if a child has exited."""
        if not self.signalled:
            for name, proc in self.children.items():
                if proc.poll() is not None:
                    time.sleep(0.2)  # a Ctrl-C may have reached the child first
                    if not self.signalled:
                        raise CommandError(
                            f"The {name} exited unexpectedly (code {proc.returncode})")
        if self.signalled:
            raise Stopped

    def wait_until(self, predicate: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not predicate():
            self.tick()
            if time.monotonic() > deadline:
                raise CommandError(f"Gave up after {START_TIMEOUT:.0f}s waiting for {what}")
            time.sleep(0.2)

    def last_worker_id(self) -> int:
        from djq.models import Worker

        return Worker.objects.order_by("-id").values_list("id", flat=True).first() or 0

    def worker_ready(self, since: int) -> bool:
        """Whether our worker has registered (a row newer than ``since`` with its pid)."""
        from djq.models import Worker

        pid = self.children["worker"].pid
        return Worker.objects.filter(id__gt=since, pid=pid, stopped_at__isnull=True).exists()

    def enqueue_samples(self) -> None:
        from demo_project.demo.tasks import add, div, fail, long_task

        samples: list[tuple[str, str, Callable[[], Any]]] = [
            ("add(2, 3)", "SUCCESS with 5", lambda: add.delay(2, 3)),
            ("div(1, 0)", "retries, then FAILURE", lambda: div.delay(1, 0)),
            ("long_task(20, 0.5)", "PROGRESS for 10 s", lambda: long_task.delay(20, 0.5)),
            ("fail()", "FAILURE", lambda: fail.delay()),
        ]
        self.say("Sample tasks:")
        for call, outcome, send in samples:
            self.say(f"  {call:<20} {send().id}  ({outcome})")

    def stop_children(self) -> None:
        """SIGTERM each child still running, wait, then SIGKILL what is left."""
        for proc in self.children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for name, proc in self.children.items():
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"The {name} did not stop within {STOP_TIMEOUT:.0f}s: killed")
                proc.kill()
                proc.wait()


def answers(url: str) -> bool:
    """Whether an HTTP server answers at ``url`` (any status counts)."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False
