"""Running ``manage.py`` commands as subprocesses on the test database, with bounded waits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent


def manage_env(overrides: dict[str, Any] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["DJQ_TEST_DATABASE_NAME"] = connections["default"].settings_dict["NAME"]
    env["DJQ_TEST_OVERRIDES"] = json.dumps(overrides or {})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_manage(*args: str, input: str | None = None, timeout: float = 60,
               overrides: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py ARGS`` to its end; returns its exit code and output."""
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT,
                          env=manage_env(overrides), input=input, capture_output=True,
                          text=True, timeout=timeout)


class Running:
    """A ``manage.py`` command left running: its output lines are collected as they come."""

    def __init__(self, *args: str, overrides: dict[str, Any] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT,
            env=manage_env(overrides), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True)
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout),
                             daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr),
                             daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def wait_line(self, text: str, stream: str = "stdout", timeout: float = 30) -> str:
        lines = self.stdout if stream == "stdout" else self.stderr

        def found() -> str | None:
            if self.proc.poll() is not None and not any(text in line for line in lines):
                pytest.fail(f"command exited with {self.proc.returncode} before printing "
                            f"{text!r}:\n{self.output()}")
            return next((line for line in lines if text in line), None)

        return wait_for(found, timeout=timeout, message=f"{text!r} on {stream}")

    def output(self) -> str:
        return "\n".join(self.stdout) + "\n--- stderr ---\n" + "\n".join(self.stderr)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signum)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"command did not stop within {timeout}s:\n{self.output()}")
        for reader in self._readers:
            reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
