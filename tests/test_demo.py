"""``manage.py djq_demo`` (what ``make demo`` runs), as a real process on the test database."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from djq import AsyncResult, states
from tests.conftest import ROOT, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow,
              pytest.mark.timeout(120)]


class Demo:
    """A ``manage.py djq_demo`` process in its own session, output in a file."""

    def __init__(self, log_path: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        env = dict(os.environ)
        env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        env["DJQ_TEST_DATABASE_NAME"] = connections["default"].settings_dict["NAME"]
        env["PYTHONUNBUFFERED"] = "1"
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "djq_demo", "--port", str(self.port)],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def find(self, pattern: str, timeout: float = 60.0) -> str:
        """The first group of ``pattern`` in the output, once it appears."""
        def found() -> re.Match[str] | None:
            if self.proc.poll() is not None:
                pytest.fail(f"djq_demo exited with {self.proc.returncode}:\n{self.output()}")
            return re.search(pattern, self.output())
        match: re.Match[str] = wait_for(found, timeout, interval=0.2, message=repr(pattern))
        return match.group(1)

    def close(self) -> None:
        try:  # the whole session: the demo and anything it may have leaked
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self.log.close()


@pytest.fixture
def demo(transactional_db: Any, tmp_path: Path) -> Iterator[Demo]:
    process = Demo(tmp_path / "demo.log")
    yield process
    process.close()  # before the test database is flushed


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        children = {p for p, pp in parents.items() if pp == parent}
        found |= children
        todo.extend(children)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def log_in(base: str, password: str) -> tuple[str, Any]:
    """Log into the admin as ``admin``; returns the page the login lands on and the
    signed-in opener."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    login = f"{base}/admin/login/?next=/admin/"
    with opener.open(login, timeout=10) as page:
        assert page.status == 200
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.read().decode())
    assert match, "no CSRF token on the login page"
    form = urllib.parse.urlencode({"csrfmiddlewaretoken": match.group(1), "username": "admin",
                                   "password": password, "next": "/admin/"}).encode()
    with opener.open(login, data=form, timeout=10) as page:
        assert page.status == 200
        assert page.geturl() == f"{base}/admin/"
        body: str = page.read().decode()
        return body, opener


@pytest.mark.parametrize("ctrl_c", ["process", "group"])
def test_demo_runs_everything_and_ctrl_c_stops_it(demo: Demo, ctrl_c: str) -> None:
    password = demo.find(r"Admin password: (\S+)")
    base = demo.find(r"Admin:\s+(http://\S+)/admin/")
    assert base == f"http://127.0.0.1:{demo.port}"
    assert demo.find(r"Monitor:\s+(http://\S+)") == f"{base}/djq/"
    assert demo.find(r"API:\s+(http://\S+)") == f"{base}/api/djq/"
    add_id = demo.find(r"add\(2, 3\)\s+([0-9a-f-]{36})")
    demo.find(r"(Press Ctrl-C to stop\.)")
    for call in ("div(1, 0)", "long_task(20, 0.5)", "fail()"):
        assert re.search(re.escape(call) + r"\s+[0-9a-f-]{36}", demo.output())

    home, opener = log_in(base, password)
    assert "Site administration" in home
    # The monitor, with the demo's allow-listed tasks in its "Send a task" form; the
    # admin's "View site" leads there; its polling stays out of the log.
    with opener.open(f"{base}/", timeout=10) as page:
        assert page.geturl() == f"{base}/djq/"
        assert '<option>demo_project.demo.tasks.add</option>' in page.read().decode()
    for _ in range(3):
        with opener.open(f"{base}/djq/data/stats/", timeout=10) as page:
            assert page.status == 200
    with opener.open(f"{base}/api/djq/", timeout=10) as page:
        assert page.status == 200
    wait_for(lambda: "GET /api/djq/ HTTP" in demo.output(), 10, message="the API request logged")
    assert "/djq/data/" not in demo.output()
    result = AsyncResult(add_id)
    assert result.get(timeout=30) == 5
    assert result.state == states.SUCCESS

    children = descendants(demo.proc.pid)
    assert len(children) >= 4  # the worker, its two pool processes, runserver
    # "process": only the demo gets SIGINT and must stop its children itself;
    # "group": what Ctrl-C in a terminal does, every process gets it.
    if ctrl_c == "group":
        os.killpg(demo.proc.pid, signal.SIGINT)
    else:
        demo.proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    try:
        code = demo.proc.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"djq_demo did not stop within 30s:\n{demo.output()}")
    assert code == 0, demo.output()
    assert time.monotonic() - started < 30
    output = demo.output()
    stopping = output.partition("Stopping the worker and the web server...")[2]
    assert stopping.endswith("Stopped.\n"), output
    # (the failing sample tasks log tracebacks; the shutdown must not)
    assert "Traceback" not in stopping and "unexpectedly" not in output, output
    # The pool processes leave on their own once the worker has gone.
    wait_for(lambda: not any(alive(pid) for pid in children), 10,
             message=f"the demo's processes {sorted(children)} to be gone")
