"""A real PgBouncer (Debian's ``pgbouncer``) in transaction mode in front of the test
database, on a free loopback port.

Workers and commands reach the database through it with ``DJQ_TEST_DATABASE_PORT`` (as
for :class:`tests.proxy.TcpProxy`); ``DJQ_TEST_LISTEN_DIRECT=1`` also gives them a
``direct`` alias that bypasses it, for ``DJQ["listen_database"]``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any

from django.db import connections

BINARY_PATHS = ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")


def binary() -> str | None:
    found = shutil.which("pgbouncer")
    if found:
        return found
    return next((p for p in BINARY_PATHS if os.access(p, os.X_OK)), None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgBouncer:
    """``pool_mode = transaction``, ``auth_type = any``: every client database name is
    forwarded, as the test database's own user."""

    def __init__(self, executable: str, pool_size: int = 20, listen_addr: str = "127.0.0.1",
                 extra: str = "") -> None:
        """``listen_addr``: PgBouncer's (comma-separated addresses); ``extra``: more lines
        for its ``[pgbouncer]`` section."""
        settings = connections["default"].settings_dict
        host = settings.get("HOST") or "/var/run/postgresql"
        port = int(settings.get("PORT") or 5432)
        user = settings.get("USER") or "postgres"
        target = f"host={host} port={port} user={user}"
        if settings.get("PASSWORD"):
            target += f" password={settings['PASSWORD']}"
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="djq-pgbouncer-")
        os.chmod(self.dir, 0o755)
        config = os.path.join(self.dir, "pgbouncer.ini")
        with open(config, "w") as f:
            f.write(f"""[databases]
* = {target}
[pgbouncer]
listen_addr = {listen_addr}
listen_port = {self.port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
max_client_conn = 500
default_pool_size = {pool_size}
ignore_startup_parameters = extra_float_digits,options
server_check_delay = 1
{extra}
""")
        os.chmod(config, 0o644)
        argv = [executable, config]
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            argv[1:1] = ["-u", self._run_as(host)]
        self.log_path = os.path.join(self.dir, "pgbouncer.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self._wait_listening()

    @staticmethod
    def _run_as(host: str) -> str:
        """The owner of the server's socket directory can reach it; else ``postgres``."""
        if host.startswith("/"):
            try:
                return pwd.getpwuid(os.stat(host).st_uid).pw_name
            except (OSError, KeyError):
                pass
        try:
            pwd.getpwnam("postgres")
            return "postgres"
        except KeyError:
            return "nobody"

    def _wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {self.proc.returncode}:\n"
                                   f"{self.output()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.close()
        raise RuntimeError(f"pgbouncer did not listen within {timeout}s:\n{self.output()}")

    def connect(self, **extra: Any) -> Any:
        """A psycopg connection to the test database through the pooler."""
        import psycopg

        settings = connections["default"].settings_dict
        return psycopg.connect(host="127.0.0.1", port=self.port, dbname=settings["NAME"],
                               user=settings.get("USER") or "postgres", **extra)

    def output(self) -> str:
        self.log.flush()
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        self._wait_server_sessions_gone()

    @staticmethod
    def _wait_server_sessions_gone(timeout: float = 5.0) -> None:
        """The pooler's server sessions end a moment after it does: wait for them, so
        that the test database can be dropped (this runs when the test session ends)."""
        from djq.db import open_connection

        connections.close_all()
        try:
            conn = open_connection()
        except Exception:  # noqa: BLE001 - nothing to wait for then
            return
        with conn:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                    "current_database() AND pid <> pg_backend_pid()").fetchone()
                if not row or not row[0]:
                    return
                time.sleep(0.1)
